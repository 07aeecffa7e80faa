// AtollDaemon
