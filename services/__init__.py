"""The four services of the design card, and the plumbing they share (`common`)."""
