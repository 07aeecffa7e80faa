// AtollAPI
