"""The settlement centre: what counter software talks to (the platform's messages over HTTP)."""
