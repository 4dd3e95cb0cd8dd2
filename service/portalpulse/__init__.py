"""Portal Pulse: real-time readership for news and government portals."""

__version__ = "0.1.0"
