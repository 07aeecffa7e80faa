// AtollClient
