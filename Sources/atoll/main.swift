print("atoll")
