// AtollCLI
