"""Every limit of the network layer in one place (DESIGN.md rule 5: units last in names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkLimits:
    # --- consensus channel -----------------------------------------------------------
    # Largest consensus frame payload. A proposal carries tx hashes, not bodies, so 4 MiB
    # leaves room for big blocks' hash lists while bounding what one frame can cost us.
    frame_bytes_max: int = 4 * 1024 * 1024
    # Frames waiting to be written to one peer. When full, `send` drops (and counts):
    # PBFT tolerates loss and re-sends on view change; blocking the caller would not.
    outbound_queue_frames_max: int = 4096
    # Frames read from one peer and not yet taken by the node (per peer, so a flooding
    # peer cannot crowd out the others), and the shared `incoming` channel behind them.
    inbound_queue_frames_per_peer_max: int = 8192
    inbound_queue_frames_max: int = 4096
    # The writer packs up to this many frames / bytes into one stream write: one write per
    # frame gives ~5,600 frames/s, 50 per write ~160,000 frames/s (research, "What works").
    write_batch_frames_max: int = 256
    write_batch_bytes_max: int = 256 * 1024
    # Bytes asked for per stream read by the reader.
    read_chunk_bytes: int = 64 * 1024
    # An idle writer sends a keepalive this often; a reader that hears nothing (no frame,
    # no keepalive) for the silence timeout drops the connection: TCP alone can take many
    # minutes to notice a crashed or cut-off peer.
    keepalive_interval_ms: int = 1000
    peer_silence_timeout_ms: int = 6000
    # Per-peer inbound message rate (consensus frames + requests), a token bucket.
    # Exceeding it is misbehaviour: PBFT sends a few messages per block per peer.
    messages_per_s_max: int = 20000
    messages_burst_max: int = 40000

    # --- handshake and connections ------------------------------------------------------
    handshake_timeout_ms: int = 5000
    # A Hello carries a certificate chain (at most 6144 bytes: certs.CHAIN_BYTES_MAX) besides ~300 bytes of ids,
    # key and signature.
    hello_bytes_max: int = 8192
    # How often the chains of connected peers are verified again (certificates expire
    # without any block; the node also rechecks when the revocation list changes).
    credentials_recheck_ms: int = 60000
    dial_timeout_ms: int = 3000
    # Reconnect backoff: first retry after `reconnect_initial_ms`, doubling to the max.
    reconnect_initial_ms: int = 100
    reconnect_max_ms: int = 5000
    # How often the supervisor looks for peers to dial when nothing wakes it earlier.
    supervisor_tick_ms: int = 250
    # Misbehaviour bans: first ban lasts `penalty_base_ms`, doubling per strike to the max;
    # strikes are forgotten after `penalty_forget_ms` of good behaviour.
    penalty_base_ms: int = 2000
    penalty_max_ms: int = 60000
    penalty_forget_ms: int = 600000

    # --- request/response ---------------------------------------------------------------
    request_bytes_max: int = 1024 * 1024
    response_bytes_max: int = 16 * 1024 * 1024
    # A request's timeout follows how long that peer's answers to that protocol take
    # (network/timeouts.py): this at first, then between the min and the max.
    request_timeout_ms: int = 5000
    request_timeout_min_ms: int = 2000
    request_timeout_max_ms: int = 30000
    # Requests one peer may have in flight at our handlers at once.
    inbound_requests_per_peer_max: int = 8

    # --- transaction gossip -------------------------------------------------------------
    # GossipSub silently drops messages over 1 MiB with envelope (research trap 5), so a
    # batch stays well below that.
    tx_batch_bytes_max: int = 512 * 1024
    tx_batches_queue_max: int = 1024
    # Per-origin gossip batches per second; a txpool sends one every 50-100 ms.
    tx_batches_per_s_max: int = 200
    # GossipSub per-peer outbound RPC queue (library default 32, no back-pressure).
    gossip_peer_queue_rpcs_max: int = 4096
    gossip_heartbeat_s: int = 1

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if type(value) is not int or value <= 0:
                raise ValueError(f"network limit {name} must be a positive integer, got {value!r}")
        if not self.request_timeout_min_ms <= self.request_timeout_ms <= self.request_timeout_max_ms:
            raise ValueError("network limits need request_timeout_min_ms <= request_timeout_ms <= request_timeout_max_ms")
        if self.tx_batch_bytes_max > 900 * 1024:
            raise ValueError("tx_batch_bytes_max must stay under ~900 KiB: GossipSub drops messages over 1 MiB silently")
        if self.write_batch_bytes_max < 8:
            raise ValueError("write_batch_bytes_max too small")
        if self.peer_silence_timeout_ms <= 2 * self.keepalive_interval_ms:
            raise ValueError("peer_silence_timeout_ms must exceed twice keepalive_interval_ms")
