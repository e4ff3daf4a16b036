"""What the node keeps on disk: the embedded LevelDB (leveldb), the ledger of blocks,
receipts and indexes written once per block (ledger), the world state with its
overlays and state root (state), and the small operator files read bounded and written
atomically (files).

May import: chainnode.crypto, chainnode.protocol
"""
