"""The reports the bench files: every category with its subtypes, all 22 kecamatan,
every channel, and a share of related reports (another caller about the same incident:
same category and desa, a few tens of metres away, seconds later), as intake's linking
(services/intake/linking.py) recognises them."""

import random
from dataclasses import dataclass, field

from schemas.catalog import CATEGORIES, KECAMATAN

SUBTYPES: dict[str, tuple[str, ...]] = {
    "kebakaran": ("rumah", "lahan", "kendaraan", "pasar", "gudang"),
    "bencana_alam": ("banjir", "tanah_longsor", "gempa", "erupsi_kelud", "angin_puting_beliung", "pohon_tumbang_kabel"),
    "kerusuhan": ("tawuran", "demo_ricuh", "perkelahian_massal"),
    "kecelakaan": ("lalu_lintas", "kerja", "tenggelam"),
    "penyakit": ("serangan_jantung", "persalinan", "sesak_napas", "keracunan"),
    "binatang_buas": ("sarang_tawon", "ular", "anjing_liar"),
}
assert set(SUBTYPES) == set(CATEGORIES)
# Most reports still come by telephone; the rest by the public channels.
CHANNELS = (("call", 0.6), ("whatsapp", 0.15), ("sms", 0.1), ("app", 0.1), ("web", 0.05))
# Regency box (schemas.catalog.REGENCY_BOUNDS is a looser one).
LAT, LON = (-8.38, -7.97), (111.97, 112.53)


@dataclass
class Incident:
    category: str
    subtype: str
    kecamatan: str
    desa: str
    lat: float
    lon: float
    at: float


@dataclass
class Workload:
    seed: int = 112
    related_share: float = 0.25
    related_window: float = 20.0  # seconds during which more callers report the same incident
    rng: random.Random = field(init=False)
    recent: list[Incident] = field(default_factory=list)
    counter: int = 0

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def next(self, now: float) -> tuple[dict, bool]:
        """A report body, and whether it is meant as another caller for an open incident."""
        rng = self.rng
        self.counter += 1
        self.recent = [i for i in self.recent[-200:] if now - i.at < self.related_window]
        related = bool(self.recent) and rng.random() < self.related_share
        if related:
            incident = rng.choice(self.recent)
            # Tens of metres away: well inside the linking distance.
            lat = incident.lat + rng.uniform(-0.0003, 0.0003)
            lon = incident.lon + rng.uniform(-0.0003, 0.0003)
        else:
            category = rng.choice(CATEGORIES)
            incident = Incident(
                category,
                rng.choice(SUBTYPES[category]),
                rng.choice(KECAMATAN),
                f"Desa {rng.randint(1, 40)}",
                round(rng.uniform(*LAT), 5),
                round(rng.uniform(*LON), 5),
                now,
            )
            self.recent.append(incident)
            lat, lon = incident.lat, incident.lon
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        body = {
            "category": incident.category,
            "subtype": incident.subtype,
            "description": f"Laporan bench {self.counter}: {incident.category} {incident.subtype}",
            "location": {
                "kecamatan": incident.kecamatan,
                "desa": incident.desa,
                "address": f"Jl. Uji {rng.randint(1, 200)}",
                "lat": round(lat, 6),
                "lon": round(lon, 6),
            },
            "caller": {"name": f"Penelepon {self.counter}", "phone": f"0812{rng.randint(10_000_000, 99_999_999)}"},
            "channel": channel,
        }
        if incident.category in ("kecelakaan", "bencana_alam") and rng.random() < 0.2:
            body["casualties"] = rng.choice((1, 2, 3, 6))
        return body, related
