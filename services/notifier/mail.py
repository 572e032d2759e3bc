"""The e-mails the notifier sends, composed as pure functions of the dispatch.

A dispatch e-mail carries what the agency needs to act (including the caller's name
and number, which go to this agency and nowhere else), the dispatch JSON exactly as
published (attached, for systems that read the mailbox) and a signed link that
acknowledges the dispatch. An escalation e-mail tells the agency's escalation contacts
that the dispatch is still unacknowledged, with the same details and link. An update
e-mail tells the agency that another caller reported an incident it already has; a
cancellation or closing e-mail that a dispatch is called off or its incident closed.
"""

import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from uuid import UUID

MESSAGE_ID_DOMAIN = "e112.blitarkab.go.id"


def _details(data: dict) -> list[str]:
    loc = data.get("location") or {}
    caller = data.get("caller") or {}
    place = ", ".join(
        p
        for p in (
            loc.get("address"),
            loc.get("desa") and f"Desa {loc['desa']}",
            loc.get("kecamatan") and f"Kec. {loc['kecamatan']}",
        )
        if p
    )
    if loc.get("lat") is not None and loc.get("lon") is not None:
        place += f" ({loc['lat']}, {loc['lon']})"
    lines = [
        f"Kategori / category : {data.get('category')}" + (f" / {data['subtype']}" if data.get("subtype") else ""),
        f"Peran / role        : {data.get('role')}",
        f"Uraian / description: {data.get('description') or '-'}",
        f"Lokasi / location   : {place or '-'}",
        f"Penelepon / caller  : {caller.get('name') or '-'}, {caller.get('phone') or '-'}",
    ]
    if data.get("casualties") is not None:
        lines.append(f"Korban / casualties : {data['casualties']}")
    lines += [
        f"Diterima / received : {data.get('received_at')}",
        f"Dispatch            : {data.get('dispatch_id')}",
        f"Laporan / report    : {data.get('report_id')}",
    ]
    return lines


def _ack_lines(ack_url: str, expires: datetime) -> list[str]:
    return [
        "",
        "Konfirmasi penerimaan / acknowledge (stops reminders and escalation):",
        f"  {ack_url}",
        f"  (berlaku sampai / valid until {expires.astimezone(UTC).isoformat(timespec='minutes')})",
    ]


def _subject_place(data: dict) -> str:
    kecamatan = (data.get("location") or {}).get("kecamatan")
    what = data.get("category") or "laporan"
    if data.get("subtype"):
        what += f"/{data['subtype']}"
    return what + (f" - Kec. {kecamatan}" if kecamatan else "")


def _message(*, sender: str, to: list[str], subject: str, text: str, message_id: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    # Stable per dispatch and step: a re-sent copy after a lost SMTP answer is the
    # same message to the mail system.
    message["Message-ID"] = f"<{message_id}@{MESSAGE_ID_DOMAIN}>"
    message.set_content(text)
    return message


def dispatch_email(
    *, sender: str, to: list[str], body: bytes, round_: int, ack_url: str, expires: datetime, now: datetime
) -> EmailMessage:
    data = json.loads(body)
    again = " (dikirim ulang / re-sent)" if round_ > 1 else ""
    text = "\n".join(
        [f"Laporan 112 untuk / dispatch for {str(data.get('agency', '')).upper()}{again}", ""]
        + _details(data)
        + _ack_lines(ack_url, expires)
    )
    message = _message(
        sender=sender,
        to=to,
        subject=f"[112] {_subject_place(data)}{again}",
        text=text,
        message_id=f"{data.get('dispatch_id')}.dispatch.{round_}",
        now=now,
    )
    message.add_attachment(body, maintype="application", subtype="json", filename="dispatch.json")
    return message


def update_email(
    *, sender: str, to: list[str], body: bytes, update_id: UUID, ack_url: str, expires: datetime, now: datetime
) -> EmailMessage:
    """Another caller reported an incident the agency already has a dispatch for: the
    new caller's details, under the dispatch's id, with the dispatch's ack link."""
    data = json.loads(body)
    agency = str(data.get("agency", "")).upper()
    text = "\n".join(
        [
            f"PEMBARUAN: penelepon lain melaporkan kejadian yang sudah didispatch ke {agency}.",
            f"UPDATE: another caller reported the incident already dispatched to {agency}.",
            "",
        ]
        + _details(data)
        + [f"Laporan baru / new report: {data.get('new_report_id')}"]
        + _ack_lines(ack_url, expires)
    )
    message = _message(
        sender=sender,
        to=to,
        subject=f"[112 PEMBARUAN / UPDATE] {agency}: penelepon lain / another caller",
        text=text,
        message_id=f"{update_id}.update",
        now=now,
    )
    message.add_attachment(body, maintype="application", subtype="json", filename="dispatch-update.json")
    return message


def cancellation_email(*, sender: str, to: list[str], body: bytes, notice_id: UUID, now: datetime) -> EmailMessage:
    """A dispatch sent before the operator could verify the report, now found false."""
    data = json.loads(body)
    agency = str(data.get("agency", "")).upper()
    reason = str(data.get("reason", ""))
    text = "\n".join(
        [
            f"PEMBATALAN: dispatch {data.get('dispatch_id')} ke {agency} dibatalkan; operator 112 memverifikasi "
            f"laporan sebagai {reason}.",
            f"CANCELLED: dispatch {data.get('dispatch_id')} to {agency} is called off; the 112 operator verified the "
            f"report as {reason}.",
            f"Laporan / report: {data.get('report_id')}",
        ]
        + ([f"Sama dengan laporan / same incident as: {data['duplicate_of']}"] if data.get("duplicate_of") else [])
    )
    message = _message(
        sender=sender,
        to=to,
        subject=f"[112 DIBATALKAN / CANCELLED] {agency}: {reason}",
        text=text,
        message_id=f"{notice_id}.cancelled",
        now=now,
    )
    message.add_attachment(body, maintype="application", subtype="json", filename="dispatch-cancelled.json")
    return message


def closing_email(*, sender: str, to: list[str], body: bytes, notice_id: UUID, now: datetime) -> EmailMessage:
    """The incident the agency was dispatched to is closed at the 112 centre: its outcome
    and the operator's note. `notice_id` is one per closing (a reopened incident closed
    again is a new message)."""
    data = json.loads(body)
    agency = str(data.get("agency", "")).upper()
    outcome = str(data.get("outcome", ""))
    text = "\n".join(
        [
            f"DITUTUP: kejadian untuk dispatch {data.get('dispatch_id')} ke {agency} ditutup di pusat 112; "
            "tidak ada lagi yang menyusul untuk dispatch ini.",
            f"CLOSED: the incident of dispatch {data.get('dispatch_id')} to {agency} is closed at the 112 centre; "
            "nothing more will come for this dispatch.",
            f"Hasil / outcome  : {outcome}",
            f"Catatan / note   : {data.get('note') or '-'}",
            f"Ditutup / closed : {data.get('closed_at')}",
            f"Laporan / report : {data.get('report_id')}",
            f"Dispatch         : {data.get('dispatch_id')}",
        ]
    )
    message = _message(
        sender=sender,
        to=to,
        subject=f"[112 DITUTUP / CLOSED] {agency}: {outcome}",
        text=text,
        message_id=f"{notice_id}.closed",
        now=now,
    )
    message.add_attachment(body, maintype="application", subtype="json", filename="dispatch-closed.json")
    return message


def escalation_email(
    *,
    sender: str,
    to: list[str],
    body: bytes,
    dispatch_id: UUID,
    waited_seconds: int,
    ack_url: str,
    expires: datetime,
    now: datetime,
) -> EmailMessage:
    data = json.loads(body)
    agency = str(data.get("agency", "")).upper()
    text = "\n".join(
        [
            f"ESKALASI: dispatch untuk {agency} belum dikonfirmasi setelah {waited_seconds} detik.",
            f"ESCALATION: the dispatch to {agency} is not acknowledged after {waited_seconds} s.",
            "",
        ]
        + _details(data)
        + _ack_lines(ack_url, expires)
    )
    return _message(
        sender=sender,
        to=to,
        subject=f"[112 ESKALASI] {agency}: {_subject_place(data)}",
        text=text,
        message_id=f"{dispatch_id}.escalation",
        now=now,
    )
