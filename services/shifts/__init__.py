"""Shifts: the operators (call takers), the three daily shifts, check-in and
check-out, and who is on duty now."""
