"""Seeding the sandbox CRMs for the QA-search tests (explicit records, so each rule has its case)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from integrations.sandbox import SandboxServer

# Zendesk ids of the seeded users (the demo fixture's agents have ids from 360000000001).
ZOE, NOMAIL, MONONYM, EMAIL_NAME, DANA = 901, 902, 903, 904, 905
DANA_PHONE = "+1 (415) 555-0101"


def iso_days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def sf_days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def seed(sandbox: SandboxServer, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{sandbox.base_url}/__sandbox/seed", json=body, timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def zendesk_users() -> list[dict[str, Any]]:
    return [
        {"id": ZOE, "name": "Zoe Quality", "email": "zoe@example.com", "role": "agent"},
        {"id": NOMAIL, "name": "Nomail Agent", "email": None, "role": "agent"},
        {"id": MONONYM, "name": "Mononym", "email": "mono@example.com", "role": "agent"},
        {"id": EMAIL_NAME, "name": "zed@example.com Smith", "email": "zed@example.com", "role": "admin"},
        {"id": DANA, "name": "Dana Whitfield", "email": "dana@example.net", "role": "end-user", "phone": DANA_PHONE},
    ]


def zendesk_tickets() -> list[dict[str, Any]]:
    """One ticket per rule: ids 1-6; 1 and 6 are importable."""
    return [
        {
            "id": 1,
            "subject": "Refund for a broken router",
            "description": "My router arrived broken, I want a refund",
            "status": "solved",
            "via": "voice",
            "assignee_id": ZOE,
            "requester_id": DANA,
            "tags": ["vip", "billing"],
            "created_at": iso_days_ago(5),
            "updated_at": iso_days_ago(4),
            "comments": [
                {"body": "My router arrived broken, I want a refund", "author_id": DANA},
                {"body": "Refund issued to the card on file", "author_id": ZOE},
                {"body": "Ticket merged by a trigger", "author_id": -1, "public": False},
                {
                    "type": "VoiceComment",
                    "body": "Inbound call",
                    "author_id": ZOE,
                    "data": {
                        "recording_url": "https://acme.zendesk.com/recordings/r1.mp3",
                        "transcription_text": "Caller says the parcel was damaged in transit",
                    },
                },
            ],
        },
        {
            "id": 2,
            "subject": "Still open",
            "status": "open",
            "assignee_id": ZOE,
            "requester_id": DANA,
            "created_at": iso_days_ago(3),
            "updated_at": iso_days_ago(3),
        },
        {
            "id": 3,
            "subject": "Agent without email",
            "status": "solved",
            "assignee_id": NOMAIL,
            "requester_id": DANA,
            "created_at": iso_days_ago(3),
            "updated_at": iso_days_ago(3),
        },
        {
            "id": 4,
            "subject": "Nobody assigned",
            "status": "solved",
            "assignee_id": None,
            "requester_id": DANA,
            "created_at": iso_days_ago(3),
            "updated_at": iso_days_ago(3),
        },
        {
            "id": 5,
            "subject": "Too old",
            "status": "closed",
            "assignee_id": ZOE,
            "requester_id": DANA,
            "created_at": iso_days_ago(100),
            "updated_at": iso_days_ago(2),
        },
        {
            "id": 6,
            "subject": "Password reset over chat",
            "description": "Cannot log in",
            "status": "closed",
            "via": "chat",
            "assignee_id": ZOE,
            "requester_id": DANA,
            "tags": ["technical"],
            "created_at": iso_days_ago(2),
            "updated_at": iso_days_ago(1),
            "comments": [{"body": "Chat: visitor cannot log in; password reset sent", "author_id": ZOE}],
        },
    ]


def seed_zendesk(sandbox: SandboxServer) -> None:
    seed(sandbox, {"users": zendesk_users(), "tickets": zendesk_tickets()})


def seed_salesforce(sandbox: SandboxServer) -> dict[str, str]:
    """Agents, a customer and cases; returns the ids by name."""
    people = seed(
        sandbox,
        {
            "users": [
                {"FirstName": "Sam", "LastName": "Force", "Email": "sam@example.com"},
                {
                    "FirstName": "Portal",
                    "LastName": "User",
                    "Email": "portal@example.net",
                    "UserType": "PowerCustomerSuccess",
                },
                {"FirstName": "Old", "LastName": "Timer", "Email": "old@example.com", "IsActive": False},
            ],
            "contacts": [
                {"FirstName": "Casey", "LastName": "Caller", "Email": "casey@example.net", "Phone": "+442071838750"}
            ],
        },
    )
    sam, _, old = people["users"]
    (casey,) = people["contacts"]
    cases = seed(
        sandbox,
        {
            "cases": [
                {
                    "Subject": "Invoice charged twice",
                    "Description": "Double charge on the November invoice",
                    "Status": "Closed",
                    "Origin": "Phone",
                    "OwnerId": sam,
                    "ContactId": casey,
                    "CreatedDate": sf_days_ago(6),
                    "SystemModstamp": sf_days_ago(5),
                    "ClosedDate": sf_days_ago(5),
                    "CaseComments": [{"CommentBody": "Refunded the duplicate charge", "CreatedById": sam}],
                },
                {
                    "Subject": "Warranty question",
                    "Status": "Closed",
                    "Origin": "Chat",
                    "OwnerId": old,
                    "ContactId": casey,
                    "CreatedDate": sf_days_ago(4),
                    "SystemModstamp": sf_days_ago(3),
                    "LiveChatTranscripts": [{"Body": "Visitor: is my screen covered by the warranty?"}],
                },
                {
                    "Subject": "Working on it",
                    "Status": "Working",
                    "OwnerId": sam,
                    "ContactId": casey,
                    "CreatedDate": sf_days_ago(2),
                    "SystemModstamp": sf_days_ago(2),
                },
                {
                    "Subject": "In a queue",
                    "Status": "Closed",
                    "OwnerId": "00G000000000001AAA",
                    "ContactId": casey,
                    "CreatedDate": sf_days_ago(2),
                    "SystemModstamp": sf_days_ago(2),
                },
            ]
        },
    )
    return {"sam": sam, "old": old, "casey": casey, **{f"case{n}": cid for n, cid in enumerate(cases["cases"], 1)}}
