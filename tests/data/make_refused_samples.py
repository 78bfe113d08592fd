"""Makes the two videos memories.ai refuses for their codec, from the first second of
sample-h264-aac.mp4 at 160x120, with PyAV (the pinned `av` of requirements.txt):

- refused-mjpeg.avi: AVI, MJPEG video, no audio;
- refused-mpeg4.mp4: MP4, MPEG-4 Part 2 video ("mpeg4") + the sample's AAC audio, copied.

Run from the project root: .venv/bin/python tests/data/make_refused_samples.py
"""

from fractions import Fraction
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "sample-h264-aac.mp4"
SECONDS = 1.0
WIDTH, HEIGHT = 160, 120


def make(name: str, codec: str, pix_fmt: str, copy_audio: bool, **codec_options) -> Path:
    target = HERE / name
    with av.open(str(SOURCE)) as source, av.open(str(target), "w", container_options={"fflags": "+bitexact"}) as out:
        video_in = source.streams.video[0]
        rate = video_in.average_rate or Fraction(25)
        video_out = out.add_stream(codec, rate=rate)
        video_out.width, video_out.height, video_out.pix_fmt = WIDTH, HEIGHT, pix_fmt
        video_out.codec_context.flags |= av.codec.context.Flags.bitexact
        video_out.codec_context.options = codec_options
        audio_in = source.streams.audio[0] if copy_audio and source.streams.audio else None
        audio_out = out.add_stream_from_template(audio_in) if audio_in else None
        streams = [video_in] + ([audio_in] if audio_in else [])
        for packet in source.demux(streams):
            if packet.stream is audio_in:
                if packet.dts is not None and packet.pts * packet.time_base < SECONDS:
                    packet.stream = audio_out
                    out.mux(packet)
                continue
            for frame in packet.decode():  # the last, empty packet flushes the decoder
                if frame.pts * frame.time_base >= SECONDS:
                    continue
                small = frame.reformat(width=WIDTH, height=HEIGHT, format=pix_fmt)
                small.pts = frame.pts
                small.time_base = frame.time_base
                out.mux(video_out.encode(small))
        out.mux(video_out.encode(None))
    return target


def main() -> None:
    for path in (
        make("refused-mjpeg.avi", "mjpeg", "yuvj420p", copy_audio=False, qscale="8"),
        make("refused-mpeg4.mp4", "mpeg4", "yuv420p", copy_audio=True, b="150k"),
    ):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
