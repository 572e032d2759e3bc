// Kecamatan type-ahead: names starting with what was typed first, then names that
// contain it; case and spaces ignored ("wli" -> Wlingi, "rejo" -> Panggungrejo, Selorejo).

export function kecamatanMatches(names, typed) {
  const wanted = typed.trim().toLowerCase().replace(/\s+/g, "");
  if (!wanted) return [...names];
  const folded = names.map((name) => [name, name.toLowerCase()]);
  const starts = folded.filter(([, f]) => f.startsWith(wanted)).map(([n]) => n);
  const contains = folded.filter(([, f]) => !f.startsWith(wanted) && f.includes(wanted)).map(([n]) => n);
  return [...starts, ...contains];
}
