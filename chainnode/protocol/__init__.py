"""The chain's data and its one encoding: canonical msgpack (codec), blocks, headers,
transactions, receipts and certificates of commit (types), Merkle trees and proofs
(merkle), and the JSON forms of values (jsonvalue). Everything here is pure: bytes in,
objects out, and the same bytes on every node.

May import: chainnode.crypto
"""
