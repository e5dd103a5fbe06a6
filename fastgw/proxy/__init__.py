"""The data path: client and upstream protocols on uvloop, and the state they share."""
