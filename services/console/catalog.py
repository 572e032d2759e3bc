"""What the take-a-call form offers: the contract's six categories (key 1-6) and, for
each, the subtypes a call taker picks with one more key (1-9). The codes are sent to
intake as `subtype`; those of the router's extra rules (power and telephone lines) are
among them so that choosing one adds PLN or Telkom. Labels live in static/i18n/*.json."""

from schemas.catalog import CATEGORIES, CONTACT_KINDS, KECAMATAN

SUBTYPES: dict[str, tuple[str, ...]] = {
    "kebakaran": ("rumah", "toko_gedung", "pabrik", "kendaraan", "lahan_hutan", "kabel_listrik_putus", "lainnya"),
    "bencana_alam": (
        "banjir",
        "tanah_longsor",
        "gempa_bumi",
        "erupsi_kelud",
        "angin_kencang",
        "pohon_tumbang_kabel",
        "tiang_listrik_roboh",
        "tiang_telepon_roboh",
        "lainnya",
    ),
    "kerusuhan": ("tawuran", "pengeroyokan", "demonstrasi", "perusakan", "lainnya"),
    "kecelakaan": ("lalu_lintas", "kerja", "tenggelam", "kabel_telepon_putus", "lainnya"),
    "penyakit": ("sesak_napas", "pingsan", "serangan_jantung", "persalinan", "keracunan", "kejang", "lainnya"),
    "binatang_buas": ("sarang_tawon", "ular", "anjing_liar", "monyet", "lainnya"),
}

# One key each on the category chooser, so noise is logged in a second.
KIND_KEYS = {"d": "emergency", "p": "prank", "k": "ghost", "i": "information"}


def form_catalog() -> dict:
    return {
        "categories": [{"code": c, "key": str(i + 1), "subtypes": list(SUBTYPES[c])} for i, c in enumerate(CATEGORIES)],
        "kinds": [{"code": kind, "key": key} for key, kind in KIND_KEYS.items()],
        "kecamatan": list(KECAMATAN),
        "contact_kinds": list(CONTACT_KINDS),
    }
