"""Shifts: the operators (call takers), the three daily shifts and the monthly roster,
check-in, status and who is free now, coverage alerts, and handover notes."""
