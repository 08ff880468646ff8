import io

from service.observe.logging import BufferedLineLogger


def test_info_is_buffered_and_warnings_are_written_at_once() -> None:
    raw = io.BytesIO()
    stream = io.BufferedWriter(raw, 1 << 16)
    logger = BufferedLineLogger(stream)
    logger.info(b'{"event":"request"}')
    assert raw.getvalue() == b""  # still in the buffer
    logger.error(b'{"event":"model_load_failed"}')
    assert raw.getvalue() == b'{"event":"request"}\n{"event":"model_load_failed"}\n'
    logger.info(b'{"event":"request"}')
    logger.flush()
    assert raw.getvalue().endswith(b'{"event":"request"}\n')
