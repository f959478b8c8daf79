#!/usr/bin/env python3
"""Writes the WAV prompts shipped with the `uas` template (8 kHz, 16-bit, mono).

    python3 templates/make_assets.py

welcome.wav: three strikes of a 660 Hz chime (1.5 s); the template's test
             listens for 660 Hz, so keep that frequency if you change it.
menu.wav:    a rising then falling two-note figure, C5 and G5 (2.0 s).
Each file stays under 40 KB (16 000 bytes a second).
"""
import math
import os
import struct
import wave

RATE = 8000
HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "uas", "assets")


def chime(freq, strikes, strike_s, amp=0.45, decay=3.0, floor=0.35):
    """`strikes` struck notes at `freq` with continuous phase (a clean tone to detect)."""
    out = []
    for n in range(int(strikes * strike_s * RATE)):
        t = n / RATE
        local = t % strike_s
        env = floor + (1.0 - floor) * math.exp(-decay * local)
        attack = min(1.0, local / 0.005)  # 5 ms attack: no click
        s = math.sin(2 * math.pi * freq * t) + 0.15 * math.sin(2 * math.pi * 2 * freq * t)
        out.append(amp * env * attack * s / 1.15)
    return out


def fade(samples, ms=20):
    k = int(RATE * ms / 1000)
    for i in range(k):
        g = i / k
        samples[i] *= g
        samples[-1 - i] *= g
    return samples


def notes(seq, note_s, amp=0.4):
    out = []
    for f in seq:
        out += fade([amp * math.sin(2 * math.pi * f * n / RATE) for n in range(int(note_s * RATE))])
    return out


def write(name, samples):
    path = os.path.join(ASSETS, name)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32767)) for s in samples))
    print(f"{path}: {len(samples) / RATE:.2f} s, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    os.makedirs(ASSETS, exist_ok=True)
    write("welcome.wav", fade(chime(660.0, 3, 0.5)))
    write("menu.wav", notes([523.25, 783.99, 523.25, 783.99, 0.0, 783.99, 523.25, 0.0], 0.25))
