"""How received MQTT 5 property strings are read (MQTT 5.0 section 1.5.4), after
``mend_paho_strings``: U+FEFF kept, everything else paho refuses still refused."""

from __future__ import annotations

import paho.mqtt.properties as paho_properties
import pytest
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateways.mqtt.properties import mend_paho_strings


def utf8_string(data: bytes) -> bytes:
    """A UTF-8 Encoded String of MQTT 5.0 section 1.5.4: two bytes of length, then ``data``."""
    return len(data).to_bytes(2, "big") + data


@pytest.fixture(autouse=True)
def mended() -> None:
    assert mend_paho_strings() is True


def test_mending_is_idempotent() -> None:
    reader = paho_properties.readUTF
    assert mend_paho_strings() is True
    assert paho_properties.readUTF is reader


@pytest.mark.parametrize("text", ["\ufeff", "\ufeffreply/1", "a\ufeffb", "x\ufeff", "plain"])
def test_u_feff_is_kept_where_it_is(text: str) -> None:
    data = utf8_string(text.encode())
    assert paho_properties.readUTF(data, len(data)) == (text, len(data))


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf\x00", b"\x00\xef\xbb\xbf"])
def test_u_0000_stays_malformed(data: bytes) -> None:
    """[MQTT-1.5.4-2], before or after a U+FEFF."""
    packed = utf8_string(data)
    with pytest.raises(MalformedPacket, match=r"\[MQTT-1\.5\.4-2\]"):
        paho_properties.readUTF(packed, len(packed))


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf\xed\xa0\x80", b"\xef\xbb\xbf\xff"])
def test_ill_formed_utf_8_stays_refused(data: bytes) -> None:
    """[MQTT-1.5.4-1]: an encoded surrogate, a byte that starts nothing. paho's reader raises
    ``UnicodeDecodeError``, which its PUBLISH decoder turns into a Malformed Packet."""
    packed = utf8_string(data)
    with pytest.raises(UnicodeDecodeError):
        paho_properties.readUTF(packed, len(packed))


def test_a_string_longer_than_its_property_is_malformed() -> None:
    packed = utf8_string("\ufeffabc".encode())
    with pytest.raises(MalformedPacket, match="too long"):
        paho_properties.readUTF(packed, len(packed) - 1)


def test_publish_properties_with_u_feff_unpack() -> None:
    sent = Properties(PacketTypes.PUBLISH)
    sent.ResponseTopic = "\ufeffreply"
    sent.UserProperty = [("\ufeff", "v\ufeff")]
    received = Properties(PacketTypes.PUBLISH)
    received.unpack(sent.pack())
    assert received.ResponseTopic == "\ufeffreply"
    assert received.UserProperty == [("\ufeff", "v\ufeff")]
