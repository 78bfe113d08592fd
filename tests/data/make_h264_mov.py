"""Makes sample-h264-aac.mov: sample-h264-aac.mp4's streams copied, untouched, into a QuickTime
container (major brand "qt  "), the H.264 MOV that browsers play once it is served as video/mp4.

Run from the project root: .venv/bin/python tests/data/make_h264_mov.py
"""

from pathlib import Path

import av

HERE = Path(__file__).resolve().parent

with av.open(str(HERE / "sample-h264-aac.mp4")) as source, \
        av.open(str(HERE / "sample-h264-aac.mov"), "w", format="mov", container_options={"fflags": "+bitexact"}) as out:
    streams = {stream.index: out.add_stream_from_template(stream) for stream in source.streams}
    for packet in source.demux():
        if packet.dts is None:  # the empty packet at the end
            continue
        packet.stream = streams[packet.stream.index]
        out.mux(packet)
