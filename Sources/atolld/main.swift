print("atolld")
