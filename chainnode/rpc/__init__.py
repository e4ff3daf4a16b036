"""JSON-RPC 2.0 over HTTP and WebSocket (FISCO BCOS 3.x method names)."""
