"""The deploy check: the documented install of a server and a device, run on this machine."""
