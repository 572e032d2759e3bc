"""Seed data: the local units of the agencies that have them, per kecamatan.

This is a plausible starting point written from public knowledge of Kabupaten Blitar,
NOT an authoritative list: the Command Center corrects it through the router's API
(`PUT /v1/routing-table/units/{agency}/{kecamatan}`), each correction a new version of
the routing table with who made it and why.

- polres: one Polsek (police sector) per kecamatan.
- dinkes: the kecamatan's puskesmas (community health centre; some kecamatan have two,
  the seed names the one that carries the kecamatan's name).
- damkar: the fire post that answers for the kecamatan: the main post in Kanigoro (the
  regency seat) and sector posts in Wlingi (east), Srengat (west) and Sutojayan (south of
  the Brantas), each taking the kecamatan nearest to it.
"""

from schemas.catalog import KECAMATAN


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


POLSEK = {k: {"code": f"polsek-{_slug(k)}", "name": f"Polsek {k}"} for k in KECAMATAN}
PUSKESMAS = {k: {"code": f"pkm-{_slug(k)}", "name": f"Puskesmas {k}"} for k in KECAMATAN}

FIRE_POSTS = {
    "damkar-induk-kanigoro": (
        "Pos Induk Damkar Kanigoro",
        ["Kanigoro", "Garum", "Nglegok", "Sanankulon", "Kademangan"],
    ),
    "damkar-pos-wlingi": (
        "Pos Damkar Wlingi",
        ["Wlingi", "Talun", "Selopuro", "Gandusari", "Doko", "Kesamben", "Selorejo"],
    ),
    "damkar-pos-srengat": ("Pos Damkar Srengat", ["Srengat", "Wonodadi", "Udanawu", "Ponggok"]),
    "damkar-pos-sutojayan": (
        "Pos Damkar Sutojayan",
        ["Sutojayan", "Binangun", "Panggungrejo", "Wates", "Bakung", "Wonotirto"],
    ),
}
FIRE_POST_OF = {k: {"code": code, "name": name} for code, (name, served) in FIRE_POSTS.items() for k in served}

UNITS: dict[str, dict[str, dict[str, str]]] = {"polres": POLSEK, "dinkes": PUSKESMAS, "damkar": FIRE_POST_OF}
