"""The supply_chain contract through the real engine: custody, records, splits, recalls."""

from __future__ import annotations

import pytest

from tests.contracts.library.harness import GAS, Chain, addr, event, events

ADMIN = addr(0x0A)
REG = addr(0x2E)
BOAT = addr(0x10)        # producer
PLANT = addr(0x11)       # processor
TRUCK = addr(0x12)       # logistics
SHOP = addr(0x13)        # retailer
SHOP2 = addr(0x14)       # retailer
CUSTOMS = addr(0x15)
INSPECTOR = addr(0x16)
BOAT2 = addr(0x17)       # another producer
NOBODY = addr(0x99)
H = b"\x5a" * 32


@pytest.fixture
def world():
    chain = Chain("sm")
    sc = chain.deploy("supply_chain", ADMIN, REG, sender=addr(0x01))
    for who, role, name in ((BOAT, "producer", "Boat Haiyu 7"), (PLANT, "processor", "Zhoushan Cold Plant"),
                            (TRUCK, "logistics", "Cold Truck Co"), (SHOP, "retailer", "Fresh Market"),
                            (SHOP2, "retailer", "Corner Shop"), (CUSTOMS, "customs", "Ningbo Customs"),
                            (INSPECTOR, "inspector", "Food Lab"), (BOAT2, "producer", "Boat Haiyu 9")):
        sc.ok(ADMIN, "register_participant", who, role, name)
    sc.ok(BOAT, "create_batch", "FISH-001", "yellow croaker", "East China Sea, area 61", 1_000_000, H)
    return chain, sc


def move(sc, code, frm, to, where="dock"):
    sc.ok(frm, "hand_over", code, to, where, None)
    sc.ok(to, "receive", code)


def test_init_and_participants() -> None:
    chain = Chain("sm")
    sc = chain.deploy("supply_chain", None, None, sender=ADMIN)
    assert event(sc.deployed, "SupplyChainCreated") == {"admin": ADMIN, "regulator": ADMIN}
    sc.fails(BOAT, "register_participant", BOAT, "producer", "x", match="only the admin")
    sc.fails(ADMIN, "register_participant", BOAT, "fisher", "x", match="role must be one of")
    sc.fails(ADMIN, "register_participant", BOAT, "producer", "", match="name must be non-empty text")
    sc.fails(ADMIN, "register_participant", b"\x01", "producer", "x", match="20-byte address")
    r = sc.ok(ADMIN, "register_participant", BOAT, "producer", "Boat")
    assert event(r, "ParticipantRegistered") == {"participant": BOAT, "role": "producer", "name": "Boat"}
    sc.fails(ADMIN, "register_participant", BOAT, "retailer", "x", match="already a registered participant")
    sc.fails(BOAT, "remove_participant", BOAT, match="only the admin")
    r = sc.ok(ADMIN, "remove_participant", BOAT)
    assert event(r, "ParticipantRemoved") == {"participant": BOAT}
    sc.fails(ADMIN, "remove_participant", BOAT, match="not a registered participant")
    sc.fails(BOAT, "create_batch", "X", "fish", "sea", 1, None, match="not a registered participant")
    sc.ok(ADMIN, "register_participant", BOAT, "retailer", "Boat shop")
    assert sc.view("view_participant", BOAT) == {"role": "retailer", "name": "Boat shop", "active": True}
    sc.fails(ADMIN, "set_regulator", b"x", match="20-byte address")
    sc.fails(BOAT, "set_regulator", BOAT, match="only the admin")
    assert event(sc.ok(ADMIN, "set_regulator", REG), "RegulatorChanged") == {"regulator": REG}


def test_create_batch_checks(world) -> None:
    chain, sc = world
    for who in (PLANT, TRUCK, SHOP, CUSTOMS, INSPECTOR, ADMIN, REG):
        sc.fails(who, "create_batch", "FISH-002", "fish", "sea", 10, None)
    sc.fails(PLANT, "create_batch", "FISH-002", "fish", "sea", 10, None, match="only a producer")
    sc.fails(BOAT, "create_batch", "FISH-001", "fish", "sea", 10, None, match="already in use")
    sc.fails(BOAT, "create_batch", "", "fish", "sea", 10, None, match="code must be a batch code")
    sc.fails(BOAT, "create_batch", "C" * 65, "fish", "sea", 10, None, match="code must be a batch code")
    sc.fails(BOAT, "create_batch", 42, "fish", "sea", 10, None, match="code must be a batch code")
    sc.fails(BOAT, "create_batch", "F2", "", "sea", 10, None, match="product must be non-empty")
    sc.fails(BOAT, "create_batch", "F2", "fish", None, 10, None, match="origin must be non-empty")
    for q in (0, -1, "10", True, 10**15 + 1):
        sc.fails(BOAT, "create_batch", "F2", "fish", "sea", q, None, match="quantity")
    sc.fails(BOAT, "create_batch", "F2", "fish", "sea", 10, b"short", match="meta_hash must be the 32-byte hash")
    r = sc.ok(BOAT, "create_batch", "F2", "fish", "sea", 10, None)
    assert event(r, "BatchCreated") == {"code": "F2", "product": "fish", "origin": "sea", "quantity": 10,
                                        "producer": BOAT, "meta_hash": None}
    assert sc.view("view_holder", "F2") == BOAT and sc.view("view_status", "F2") == "active"


def test_hand_over_and_receive(world) -> None:
    chain, sc = world
    sc.fails(PLANT, "hand_over", "FISH-001", TRUCK, "dock", None, match="only the current holder")
    sc.fails(NOBODY, "hand_over", "FISH-001", TRUCK, "dock", None, match="not a registered participant")
    sc.fails(BOAT, "hand_over", "FISH-404", PLANT, "dock", None, match="no batch with code FISH-404")
    sc.fails(BOAT, "hand_over", "FISH-001", NOBODY, "dock", None, match="recipient is not a registered participant")
    sc.fails(BOAT, "hand_over", "FISH-001", BOAT, "dock", None, match="already hold")
    sc.fails(BOAT, "hand_over", "FISH-001", PLANT, "", None, match="location must be non-empty")
    sc.fails(BOAT, "hand_over", "FISH-001", "plant", "dock", None, match="to must be a 20-byte address")
    r = sc.ok(BOAT, "hand_over", "FISH-001", PLANT, "Shenjiamen dock", H)
    assert event(r, "HandedOver") == {"code": "FISH-001", "frm": BOAT, "to": PLANT, "location": "Shenjiamen dock", "meta_hash": H}
    assert sc.view("view_status", "FISH-001") == "in_transit"
    assert sc.view("view_holder", "FISH-001") == BOAT
    sc.fails(BOAT, "hand_over", "FISH-001", TRUCK, "dock", None, match="waiting to be received")
    sc.fails(TRUCK, "receive", "FISH-001", match="not being handed to you")
    sc.fails(NOBODY, "receive", "FISH-001", match="not a registered participant")
    r = sc.ok(PLANT, "receive", "FISH-001")
    assert event(r, "Received") == {"code": "FISH-001", "holder": PLANT, "frm": BOAT}
    assert sc.view("view_holder", "FISH-001") == PLANT and sc.view("view_status", "FISH-001") == "active"
    sc.fails(PLANT, "receive", "FISH-001", match="not being handed to you")
    # cancel a hand-over the recipient never collected
    sc.ok(PLANT, "hand_over", "FISH-001", TRUCK, "plant gate", None)
    sc.fails(TRUCK, "cancel_hand_over", "FISH-001", match="only the current holder")
    r = sc.ok(PLANT, "cancel_hand_over", "FISH-001")
    assert event(r, "HandOverCancelled") == {"code": "FISH-001", "holder": PLANT, "to": TRUCK}
    sc.fails(PLANT, "cancel_hand_over", "FISH-001", match="no hand-over waiting")
    sc.fails(TRUCK, "receive", "FISH-001", match="not being handed to you")
    # a removed participant can no longer receive
    sc.ok(PLANT, "hand_over", "FISH-001", TRUCK, "plant gate", None)
    sc.ok(ADMIN, "remove_participant", TRUCK)
    sc.fails(TRUCK, "receive", "FISH-001", match="not a registered participant")


def test_records(world) -> None:
    chain, sc = world
    r = sc.ok(INSPECTOR, "add_record", "FISH-001", "inspection", H)
    assert event(r, "RecordAdded") == {"code": "FISH-001", "kind": "inspection", "data_hash": H, "by": INSPECTOR, "role": "inspector"}
    sc.ok(INSPECTOR, "add_record", "FISH-001", "certificate", H)
    sc.fails(INSPECTOR, "add_record", "FISH-001", "clearance", H, match="the inspector role may not add a clearance record")
    for kind in ("clearance", "inspection", "certificate"):
        sc.ok(CUSTOMS, "add_record", "FISH-001", kind, H)
    for who in (BOAT, PLANT, TRUCK, SHOP):
        sc.fails(who, "add_record", "FISH-001", "inspection", H, match="only inspectors and customs")
    sc.fails(ADMIN, "add_record", "FISH-001", "inspection", H, match="not a registered participant")
    sc.fails(INSPECTOR, "add_record", "FISH-001", "taste", H, match="kind must be one of")
    sc.fails(INSPECTOR, "add_record", "FISH-001", "inspection", None, match="data_hash must be the 32-byte hash")
    sc.fails(INSPECTOR, "add_record", "NOPE", "inspection", H, match="no batch with code NOPE")
    kinds = [e.get("record") for e in sc.view("view_history", "FISH-001") if e["kind"] == "record"]
    assert kinds == ["inspection", "certificate", "clearance", "inspection", "certificate"]


def test_split_conserves_quantity(world) -> None:
    chain, sc = world
    move(sc, "FISH-001", BOAT, PLANT)
    sc.fails(BOAT, "split", "FISH-001", ["A", "B"], [500_000, 500_000], match="only the current holder")
    sc.fails(PLANT, "split", "FISH-001", ["A", "B"], [500_000, 499_999], match="add up to 999999 but the batch holds 1000000")
    sc.fails(PLANT, "split", "FISH-001", ["A", "B"], [500_000, 500_001], match="must be equal")
    sc.fails(PLANT, "split", "FISH-001", ["A"], [1_000_000], match="2 to 50 new batches")
    sc.fails(PLANT, "split", "FISH-001", ["A", "B"], [1_000_000], match="one quantity per new code")
    sc.fails(PLANT, "split", "FISH-001", ["A", "A"], [500_000, 500_000], match="appears twice")
    sc.fails(PLANT, "split", "FISH-001", ["A", "FISH-001"], [500_000, 500_000], match="already in use")
    sc.fails(PLANT, "split", "FISH-001", ["A", "B"], [0, 1_000_000], match="quantities[0] must be a positive")
    sc.fails(PLANT, "split", "FISH-001", ["A", ""], [1, 999_999], match="new_codes[1] must be a batch code")
    sc.fails(PLANT, "split", "FISH-001", "AB", [1, 2], match="must be lists")
    sc.fails(PLANT, "split", "FISH-001", [f"C{i}" for i in range(51)], [1] * 51, match="2 to 50")
    r = sc.ok(PLANT, "split", "FISH-001", ["FISH-001-A", "FISH-001-B", "FISH-001-C"], [600_000, 300_000, 100_000])
    assert event(r, "Split") == {"code": "FISH-001", "new_codes": ["FISH-001-A", "FISH-001-B", "FISH-001-C"],
                                 "quantities": [600_000, 300_000, 100_000], "holder": PLANT}
    assert sc.view("view_status", "FISH-001") == "split"
    assert sum(sc.view("view_batch", c)["quantity"] for c in ("FISH-001-A", "FISH-001-B", "FISH-001-C")) == 1_000_000
    child = sc.view("view_batch", "FISH-001-B")
    assert child["holder"] == PLANT and child["producer"] == BOAT and child["parent"] == "FISH-001"
    assert child["product"] == "yellow croaker"
    sc.fails(PLANT, "hand_over", "FISH-001", TRUCK, "x", None, match="was split into other batches")
    sc.fails(PLANT, "split", "FISH-001", ["X", "Y"], [1, 999_999], match="was split")
    move(sc, "FISH-001-B", PLANT, TRUCK)
    sc.ok(TRUCK, "split", "FISH-001-B", ["B1", "B2"], [150_000, 150_000])
    assert sc.view("view_batch", "B1")["producer"] == BOAT


def test_split_depth_and_family_are_bounded(world) -> None:
    chain, sc = world
    sc.ok(BOAT, "create_batch", "P", "fish", "sea", 1024, None)
    code = "P"
    for depth in range(8):
        sc.ok(BOAT, "split", code, [f"{code}.0", f"{code}.1"], [1024 // 2**(depth + 1)] * 2)
        code = f"{code}.0"
    sc.fails(BOAT, "split", code, ["x", "y"], [2, 2], match="at most 8 levels deep")
    assert len(sc.view("view_history", code)) == 1 + 8 * 2     # created, then split + split_from per level
    sc.ok(BOAT2, "create_batch", "BIG", "fish", "sea", 10_000, None)
    sc.ok(BOAT2, "split", "BIG", [f"BIG.{i}" for i in range(50)], [200] * 50)
    for i in range(4):
        sc.ok(BOAT2, "split", f"BIG.{i}", [f"BIG.{i}.{j}" for j in range(50)], [4] * 50)
    # 1 + 50 + 4 * 50 = 251 batches: one more split of 10 would pass 256
    sc.fails(BOAT2, "split", "BIG.4", [f"BIG.4.{j}" for j in range(10)], [20] * 10, match="at most 256 batches")
    sc.ok(BOAT2, "split", "BIG.4", [f"BIG.4.{j}" for j in range(5)], [40] * 5)
    r = sc.ok(REG, "recall", "BIG", "contamination")
    assert len(r.value) == 256 and len(events(r, "Recalled")) == 256
    assert r.gas_used < GAS // 2, r.gas_used


def test_recall_propagates_to_every_split_batch(world) -> None:
    chain, sc = world
    move(sc, "FISH-001", BOAT, PLANT)
    sc.ok(PLANT, "split", "FISH-001", ["A", "B"], [700_000, 300_000])
    move(sc, "A", PLANT, TRUCK)
    sc.ok(TRUCK, "split", "A", ["A1", "A2"], [350_000, 350_000])
    sc.ok(TRUCK, "hand_over", "A1", SHOP, "market", None)   # in transit when the recall comes
    sc.ok(BOAT2, "create_batch", "OTHER", "squid", "sea", 5, None)
    sc.fails(PLANT, "recall", "FISH-001", "bad", match="only the batch's producer or the regulator")
    sc.fails(BOAT2, "recall", "FISH-001", "bad", match="only the batch's producer or the regulator")
    sc.fails(BOAT, "recall", "FISH-001", "", match="reason must be non-empty")
    sc.fails(BOAT, "recall", "NOPE", "x", match="no batch with code NOPE")
    r = sc.ok(BOAT, "recall", "A", "histamine above limit")
    assert r.value == ["A", "A1", "A2"]
    assert events(r, "Recalled")[1] == {"code": "A1", "reason": "histamine above limit", "by": BOAT, "origin": "A"}
    assert [sc.view("view_status", c) for c in ("FISH-001", "A", "A1", "A2", "B", "OTHER")] == \
        ["split", "recalled", "recalled", "recalled", "active", "active"]
    sc.fails(BOAT, "recall", "A1", "again", match="already recalled")
    sc.fails(TRUCK, "hand_over", "A2", SHOP, "x", None, match="has been recalled")
    sc.fails(TRUCK, "split", "A2", ["q", "r"], [1, 349_999], match="has been recalled")
    # the goods already on their way may still be received (physically they arrive)
    sc.ok(SHOP, "receive", "A1")
    # the regulator recalls the rest from the top: A and its children are skipped
    r = sc.ok(REG, "recall", "FISH-001", "whole catch")
    assert r.value == ["FISH-001", "B"]
    assert sc.view("view_status", "B") == "recalled"
    # records may still be attached to recalled batches
    sc.ok(INSPECTOR, "add_record", "A2", "inspection", H)


def test_history_includes_the_parents_story(world) -> None:
    chain, sc = world
    sc.ok(BOAT, "hand_over", "FISH-001", PLANT, "Shenjiamen dock", H)
    chain.advance(5)
    sc.ok(PLANT, "receive", "FISH-001")
    sc.ok(INSPECTOR, "add_record", "FISH-001", "inspection", H)
    sc.ok(PLANT, "split", "FISH-001", ["A", "B"], [700_000, 300_000])
    sc.ok(PLANT, "hand_over", "B", SHOP, "market", None)
    sc.ok(SHOP, "receive", "B")
    sc.ok(BOAT, "recall", "FISH-001", "x")    # after the split: B's own history shows it
    hist = sc.view("view_history", "B")
    assert [(e["batch"], e["kind"]) for e in hist] == [
        ("FISH-001", "created"), ("FISH-001", "handed_over"), ("FISH-001", "received"), ("FISH-001", "record"),
        ("FISH-001", "split"), ("B", "split_from"), ("B", "handed_over"), ("B", "received"), ("B", "recalled"),
    ]
    assert hist[1]["by"] == BOAT and hist[1]["location"] == "Shenjiamen dock" and hist[2]["height"] == hist[1]["height"] + 5
    assert sc.view("view_history", "FISH-001")[-1]["kind"] == "recalled"
    assert len(sc.view("view_history", "A")) == 5 + 2    # the parent up to the split, split_from, recalled
    r = sc.chain.engine.query(chain.store, chain.ctx(SHOP), sc.address, "view_history", ["NOPE"], GAS)
    assert not r.ok and "no batch with code NOPE" in r.error_message


def test_typical_gas(world) -> None:
    chain, sc = world
    assert sc.deployed.gas_used < GAS // 20
    r = sc.ok(BOAT, "hand_over", "FISH-001", PLANT, "dock", H)
    assert r.gas_used < 100_000, r.gas_used
