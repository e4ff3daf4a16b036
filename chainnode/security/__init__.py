"""Who may take part: node and operator key files (keyfile), the consortium's certificates
and revocation lists (certs), and the admission of peers by certificate chain (admission).

May import: chainnode.crypto, chainnode.protocol, chainnode.store
"""
