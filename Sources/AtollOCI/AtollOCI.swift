// AtollOCI
