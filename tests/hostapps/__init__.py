"""Small function apps the host tests serve (`python -m devstack.host --app tests.hostapps.NAME`)."""
