"""A run's own id: 8 random hex digits in its checkpoint, log and TensorBoard names, so no other run can take them.

RecBole names those files after the model and the time to the second; runs a sweep or a comparison starts at once
(or two terminals, or two machines of a Ray cluster sharing a folder) would otherwise write, test and resume each
other's files. Drawn from the OS, never from the seeded RNGs, so a run's random streams are untouched.
"""
import secrets


def new_run_id():
    return secrets.token_hex(4)
