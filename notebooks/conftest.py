"""nbval runs every lab here but the students' copy of the exercises: its checks fail
until a student solves them (tests/test_exercises.py checks that each one does)."""

collect_ignore = ["04-exercises.ipynb"]
