#!/usr/bin/env python3
"""Writes the seed corpus of push_fuzz: tests/fuzz/corpus/push/<name>.pb.

Each seed is a fieldsync.v1.PushRequest of SignedEvents: every Event is
written here in text format and encoded with `protoc --encode` (no Python
protobuf needed), and its bytes go into SignedEvent.event (some seeds append
raw bytes: an unknown field, invalid UTF-8, or bytes that do not parse). The ids, device
names and seeded entities are those of push_fuzz.cc: event ids are remapped to
fresh ones at every run, device_seq is set to the next expected one and
signatures are made by the harness, so the seeds only say what to push.

Usage: tests/fuzz/gen_corpus.py   (from anywhere; rewrites the corpus)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus", "push")

VILLAGE = "620102001001"
VILLAGE2 = "620102001002"
H1 = "11111111-1111-4111-8111-000000000001"
H2 = "11111111-1111-4111-8111-000000000002"
MEMBER = "22222222-2222-4222-8222-000000000001"
SEED_VISIT = "33333333-3333-4333-8333-000000000001"
SEED_PROPOSAL = "33333333-3333-4333-8333-000000000002"
HLC = 112538891059200000  # 2024-06-01 10:00 CST, HlcAt.
NOW = 1717207200
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1

_ids = [0]


def uuid():
    _ids[0] += 1
    return "5eed0000-0000-4000-8000-%012x" % _ids[0]


def encode(message, text):
    encoded = subprocess.run(
        ["protoc", "--encode=fieldsync.v1.%s" % message, "-I", os.path.join(ROOT, "proto"),
         "-I", "/usr/include", "fieldsync/v1/sync_service.proto"],
        input=text.encode(), capture_output=True, check=False)
    if encoded.returncode != 0:
        raise SystemExit("%s\n%s" % (text, encoded.stderr.decode()))
    return encoded.stdout


def escaped(data):
    return "".join("\\%03o" % b for b in data)


def event(body, device="fz-cadre", subject=("SUBJECT_KIND_HOUSEHOLD", H1), area=VILLAGE,
          event_id=None, seq=1, signature=None, tail=b""):
    """One SignedEvent: the Event's bytes (plus `tail`, raw) and a signature
    (none: the harness signs; other than 64 bytes: kept, a bad signature)."""
    kind, sid = subject
    text = ('event_id: "%s"\ndevice_id: "%s"\ndevice_seq: %d\nhlc: %d\n'
            "device_time { seconds: %d }\n"
            'subject { kind: %s id: "%s" }\narea_code: "%s"\n%s\n'
            % (event_id or uuid(), device, seq, HLC, NOW, kind, sid, area, body))
    data = encode("Event", text) + tail
    sig = '  signature: "%s"\n' % signature if signature is not None else ""
    return 'events {\n  event: "%s"\n%s}\n' % (escaped(data), sig)


def patch(field, value, base, body="household_fields_set"):
    return '  %s { patches { field: "%s" value { %s } base_version: %d } }' % (
        body, field, value, base)


def member_update(field, value, base):
    return ('  member_updated { member_id: "%s" patches { field: "%s" value { %s } '
            "base_version: %d } }" % (MEMBER, field, value, base))


def plan(year, base, cost=100000, kind="PLAN_KIND_HOUSEHOLD_EXIT", owner=H1, items=("i1",)):
    item_text = "".join(
        ' items { item_id: "%s" category: MEASURE_CATEGORY_INDUSTRY content: "發展養殖" '
        "cost_fen: %d year: %d }" % (i, cost, year) for i in items)
    return ('  plan_revised { plan_id: "%s/%d" kind: %s year: %d base_version: %d%s }'
            % (owner, year, kind, year, base, item_text))


def visit(start=NOW - 7200, end=NOW - 3600, notes="走訪"):
    return ("  visit_recorded { start_time { seconds: %d } end_time { seconds: %d } "
            'purpose: VISIT_PURPOSE_ROUTINE notes: "%s" }' % (start, end, notes))


def deliver(amount, year=2024, plan_year=2024, item="i1"):
    return ('  measure_delivered { plan_id: "%s/%d" item_id: "%s" amount_fen: %d '
            "delivered_on { year: %d month: 5 day: 2 } }" % (H1, plan_year, item, amount, year))


def income(amount, year=2023):
    return ("  income_observed { year: %d period: INCOME_PERIOD_YEAR "
            "category: INCOME_CATEGORY_WAGES amount_fen: %d }" % (year, amount))


def request(*events, pusher=0):
    return "".join(events) + ("device_time { seconds: %d }\n" % pusher if pusher else "")


VISIT_IN_PUSH = "5eedaaaa-0000-4000-8000-000000000001"
LINK_IN_PUSH = "5eedbbbb-0000-4000-8000-000000000001"
PROPOSAL_IN_PUSH = "5eedcccc-0000-4000-8000-000000000001"
DUP = "5eeddddd-0000-4000-8000-000000000001"

SEEDS = {
    # Issue 7 item 1: writes against never-set values (each crashed the server).
    "crash_household_field_base5": request(event(patch("phone", 'string_value: "139"', 5))),
    "crash_household_field_base_max": request(
        event(patch("housing_structure", 'string_value: "磚混"', U64_MAX))),
    "crash_member_field_base3": request(event(member_update("education", 'string_value: "初中"', 3))),
    "crash_member_field_base_max": request(
        event(member_update("health", 'string_value: "健康"', U64_MAX))),
    "crash_new_plan_base7": request(event(plan(2025, 7))),
    "crash_new_plan_base_max": request(event(plan(2026, U64_MAX))),
    "crash_new_village_plan_base4": request(
        event(plan(2027, 4, kind="PLAN_KIND_VILLAGE", owner=VILLAGE), device="fz-town",
              subject=("SUBJECT_KIND_VILLAGE", VILLAGE))),
    "crash_all_in_one_push": request(
        event(patch("phone", 'string_value: "1"', 2)),
        event(member_update("gender", 'string_value: "女"', 9)),
        event(plan(2028, 1)),
        event(patch("phone", 'string_value: "2"', U64_MAX), device="fz-town")),
    # Item 13: numbers and dates out of range.
    "bound_measure_i64max": request(event(deliver(I64_MAX))),
    "bound_measure_sum": request(event(deliver(100000000)), event(deliver(100000000))),
    "bound_income_i64max": request(event(income(I64_MAX))),
    "bound_plan_cost_i64max": request(event(plan(2024, 1, cost=I64_MAX))),
    "bound_visit_year_9000": request(event(visit(221845435200, 221845435200 + 3600))),
    "bound_delivery_1999": request(event(deliver(100, year=1999))),
    "bound_plan_year_2101": request(event(plan(2101, 0))),
    "bound_income_year_1999": request(event(income(100, year=1999))),
    # Every body kind.
    "visit": request(event(visit())),
    "visit_corrected_seed": request(event(
        '  visit_corrected { original_event_id: "%s" reason: "時間記錯" corrected {'
        " start_time { seconds: %d } end_time { seconds: %d } purpose: VISIT_PURPOSE_ROUTINE } }"
        % (SEED_VISIT, NOW - 9000, NOW - 5400))),
    "visit_then_withdrawn": request(
        event(visit(), event_id=VISIT_IN_PUSH),
        event('  visit_corrected { original_event_id: "%s" reason: "誤錄" withdrawn: true }'
              % VISIT_IN_PUSH)),
    "household_registered": request(event(
        '  household_registered { household_number: "FZ-9" head_name: "王五" '
        'head_id_number: "620102198001010017" initial_status: HOUSEHOLD_STATUS_IDENTIFIED }',
        device="fz-town", subject=("SUBJECT_KIND_HOUSEHOLD", "5eed9999-0000-4000-8000-000000000009"))),
    "fields_sequential": request(event(patch("phone", 'string_value: "13900000000"', 0))),
    "fields_stale_head_name": request(
        event(patch("head_name", 'string_value: "張三"', 1)),
        event(patch("head_name", 'string_value: "張叁"', 1), device="fz-town")),
    "fields_ahead_head_name": request(event(patch("head_name", 'string_value: "張"', U64_MAX))),
    "fields_clear_location": request(event(patch("location", "", 0))),
    "fields_many": request(event(
        '  household_fields_set { patches { field: "cultivated_land_area" value { int_value: 350 } }'
        ' patches { field: "secondary_poverty_causes" value { int_list { values: 1 values: 2 } } }'
        ' patches { field: "electricity" value { bool_value: true } base_version: 3 } }')),
    "member_added": request(event(
        '  member_added { member_id: "5eed7777-0000-4000-8000-000000000007" name: "趙六" '
        "relation: MEMBER_RELATION_HEAD }")),
    "member_updated_sequential": request(event(member_update("name", 'string_value: "李肆"', 1))),
    "member_removed": request(event(
        '  member_removed { member_id: "%s" reason: MEMBER_REMOVAL_REASON_MOVED_OUT }' % MEMBER)),
    "status_proposed": request(event(
        "  status_change_proposed { from_status: HOUSEHOLD_STATUS_IDENTIFIED "
        'to_status: HOUSEHOLD_STATUS_NOT_EXITED reason: "核實" base_status_version: 1 }',
        event_id=PROPOSAL_IN_PUSH)),
    "status_confirmed_seed": request(event(
        '  status_change_confirmed { proposal_event_id: "%s" from_status: HOUSEHOLD_STATUS_IDENTIFIED'
        " to_status: HOUSEHOLD_STATUS_NOT_EXITED stage: REVIEW_STAGE_COUNTY_DECISION"
        " decision: REVIEW_DECISION_APPROVE }" % SEED_PROPOSAL, device="fz-county")),
    "status_propose_then_audit": request(
        event("  status_change_proposed { from_status: HOUSEHOLD_STATUS_IDENTIFIED "
              'to_status: HOUSEHOLD_STATUS_NOT_EXITED reason: "核實" }', event_id=PROPOSAL_IN_PUSH),
        event('  status_change_confirmed { proposal_event_id: "%s" from_status: '
              "HOUSEHOLD_STATUS_IDENTIFIED to_status: HOUSEHOLD_STATUS_NOT_EXITED "
              "stage: REVIEW_STAGE_TOWNSHIP_AUDIT decision: REVIEW_DECISION_APPROVE "
              "base_status_version: %d }" % (PROPOSAL_IN_PUSH, U64_MAX), device="fz-town")),
    "plan_revised_existing": request(event(plan(2024, 1, items=("i1", "i2", "i3")))),
    "plan_stale_two_devices": request(event(plan(2024, 0)), event(plan(2024, 0), device="fz-town")),
    "measure_delivered": request(event(deliver(2500))),
    "measure_unknown_item": request(event(deliver(2500, item="nope"))),
    "income_observed": request(event(income(1200000))),
    "link_started_then_ended": request(
        event('  link_started { link_id: "%s" cadre_id: "fz-u-cadre" role: LINK_ROLE_HOUSEHOLD_HELPER'
              " valid_from { year: 2024 month: 3 day: 1 } }" % LINK_IN_PUSH, device="fz-county"),
        event('  link_ended { link_id: "%s" valid_to { year: 2024 month: 5 day: 1 } '
              "reason: LINK_END_REASON_REPLACED }" % LINK_IN_PUSH, device="fz-county")),
    "z_resolve_last_by_value": request(event(
        '  conflict_resolved { conflict_id: "$last" value { string_value: "定" } }',
        device="fz-town")),
    "z_resolve_last_by_side": request(event(
        '  conflict_resolved { conflict_id: "$last" chosen_side: 0 }', device="fz-county")),
    "z_resolve_last_bad_side": request(event(
        '  conflict_resolved { conflict_id: "$last" chosen_side: 4294967295 }', device="fz-county")),
    "unset_conflict_then_resolve_earlier": request(
        event(patch("notes", 'string_value: "舊"', 6)),
        event('  conflict_resolved { conflict_id: "$last" chosen_side: 0 }', device="fz-town")),
    "feedback_filed": request(event(
        '  feedback_filed { from_unit_id: "U1" kind: FEEDBACK_KIND_PROJECT_NEED title: "修路" '
        'content: "村道需要硬化" }', device="fz-town", subject=("SUBJECT_KIND_VILLAGE", VILLAGE))),
    "inspection_recorded": request(event(
        '  inspection_recorded { inspector_user_id: "fz-u-town" inspector_name: "督查" '
        'findings: "屬實" event_ids: "%s" result: INSPECTION_RESULT_PASSED }' % SEED_VISIT,
        device="fz-town")),
    "admin_body_denied": request(event(
        '  area_imported { import_id: "x" part: 1 part_count: 1 }', device="fz-admin")),
    # Envelope and push paths (device_seq with its low three bits set is kept).
    "bad_signature": request(event(visit(), signature="x")),
    # Issue 9: the bytes themselves. Field 99 (varint 1) is unknown to the
    # server; field 8 (area_code) again with invalid UTF-8 does not parse;
    # a lone 0xff is no tag at all. Each is MALFORMED, the rest of the batch
    # unaffected.
    "unknown_field": request(event(visit(), tail=b"\x98\x06\x01"), event(visit())),
    "invalid_utf8": request(event(visit(), tail=b"\x42\x02\xc3\x28"), event(visit())),
    "unparseable_bytes": request(event(visit(), tail=b"\xff"), event(visit())),
    "bad_signature_mid_batch": request(event(visit()), event(visit(), signature="x" * 63),
                                       event(visit())),
    "unknown_device": request(event(visit(), device="zz-unknown")),
    "sequence_gap": request(event(visit(), seq=1000007)),
    "sequence_reused": request(event(visit(), seq=7)),
    "same_id_other_content": request(event(visit(notes="a"), event_id=DUP),
                                     event(visit(notes="b"), event_id=DUP)),
    "seed_event_id_reused": request(event(visit(), event_id=SEED_VISIT)),
    "relay_by_county": request(event(visit()), event(income(100)), pusher=3),
    "revoked_device": request(event(visit(), device="fz-revoked")),
    "out_of_scope_household": request(event(visit(), subject=("SUBJECT_KIND_HOUSEHOLD", H2))),
    "wrong_area": request(event(visit(), area=VILLAGE2, device="fz-county")),
    "hq_inspection_of_cadre": request(event(
        '  inspection_recorded { inspector_name: "HQ" findings: "ok" result: INSPECTION_RESULT_PASSED }',
        device="fz-hq", subject=("SUBJECT_KIND_CADRE", "fz-u-cadre"))),
    "empty_push": "",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".pb"):
            os.remove(os.path.join(OUT, name))
    for name, text in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name + ".pb"), "wb") as out:
            out.write(encode("PushRequest", text))
    print("%d seeds in %s" % (len(SEEDS), OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
