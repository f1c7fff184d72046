"""The till: local cache, sale engine, devices, sync client and the Qt screens."""
