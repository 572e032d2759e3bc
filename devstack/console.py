"""What the console needs from the rest of the stack at start: its own intake app key
(made through intake's admin API with the bootstrap key, the previous run's revoked),
the services' URLs, and for `make run` a demo operator with a PIN to sign in with."""

import secrets

import httpx

KEY_NAME = "console (devstack)"
DEMO_OPERATOR = "Operator Demo"


def provision_intake_key(intake_url: str, admin_key: str) -> str:
    """A fresh intake key for the console; keys this made in earlier runs are revoked,
    so a kept database does not collect one live key per run."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=intake_url, headers=auth, timeout=10) as client:
        for key in client.get("/v1/admin/api-keys").raise_for_status().json():
            if key["name"] == KEY_NAME and key["revoked_at"] is None:
                client.delete(f"/v1/admin/api-keys/{key['id']}").raise_for_status()
        created = client.post("/v1/admin/api-keys", json={"name": KEY_NAME, "rate_per_minute": 6000, "role": "console"})
        return created.raise_for_status().json()["key"]


def console_env(urls: dict[str, str], intake_key: str) -> dict[str, str]:
    return {
        "INTAKE_URL": urls["intake"],
        "SHIFTS_URL": urls["shifts"],
        "NOTIFIER_URL": urls["notifier"],
        "INTAKE_API_KEY": intake_key,
    }


def new_demo_pin() -> str:
    from services.console.auth import WeakPin, check_pin_shape

    while True:
        pin = f"{secrets.randbelow(10**6):06d}"
        try:
            check_pin_shape(pin)
            return pin
        except WeakPin:
            continue


def seed_operator(shifts_url: str, console_url: str, admin_key: str, name: str, pin: str) -> str:
    """The operator `name` (made if missing) with `pin`; returns its id."""
    auth = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(headers=auth, timeout=10) as client:
        operators = client.get(f"{shifts_url}/v1/operators").raise_for_status().json()
        found = next((o for o in operators if o["name"] == name), None)
        if found is None:
            found = client.post(f"{shifts_url}/v1/operators", json={"name": name}).raise_for_status().json()
        client.put(
            f"{console_url}/api/admin/operators/{found['id']}/pin", json={"pin": pin, "set_by": "devstack"}
        ).raise_for_status()
        return found["id"]
