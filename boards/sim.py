NAME = "sim"
