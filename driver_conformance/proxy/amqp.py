"""Just enough AMQP 0-9-1 for the proxy to lose a publisher confirmation on purpose.

A lost confirmation is the fault behind "retry never duplicates": the
publish *reached* the broker, and the sender never learned that it did, so
it cannot tell a retry from a second message.  A byte-level proxy cannot
produce it; one that knows where a publish ends and where its answer starts
can.  With ``protocol="amqp"`` each connection through a
:class:`~driver_conformance.proxy.FaultProxy` gets a :class:`ConfirmLoser`,
which reads both directions as AMQP 0-9-1 frames and:

* counts every complete ``basic.publish`` (method frame, content header,
  body frames) the client sends -- the count behind
  :meth:`ProxyFaults.publish_attempts <driver_conformance.proxy.ProxyFaults.publish_attempts>`;
* when the shared :class:`ConfirmBudget` grants it, lets one publish reach
  the broker whole, passes on nothing the client sends after it, and holds
  everything the broker sends from the moment the publish's last byte was
  written; the proxy then cuts the connection as soon as the broker's
  answer to it arrives (the ``basic.ack``/``basic.nack`` carrying its
  delivery tag when the channel is in confirm mode, ``channel.close`` or
  ``connection.close``; outside confirm mode, whatever frame comes next).
  The answer having *arrived* is what makes the fault honest: the broker
  has handled the publish, and only the answer is lost.

The frame format (AMQP 0-9-1, section 4.2.3): ``type(1) channel(2) size(4)
payload(size) 0xCE``; a method payload starts ``class-id(2) method-id(2)``;
a content header's starts ``class-id(2) weight(2) body-size(8)``.  The
reader keeps at most :data:`PREFIX` bytes of any payload, so a large message
costs nothing, and it resumes anywhere: the socket may split a frame at any
byte.  A stream that stops making sense (a bad frame end, an unknown frame
type) is no longer interpreted: the connection is forwarded as plain bytes
and counts nothing more, and the error is kept for the proxy's counters.
"""

from __future__ import annotations

import dataclasses
import struct
import threading

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_TYPES = frozenset({FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT})
FRAME_END = 0xCE
#: The 8 bytes a client opens with (a broker answers a wrong version with its own).
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

CONNECTION_CLOSE = (10, 50)
CHANNEL_OPEN = (20, 10)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
BASIC_PUBLISH = (60, 40)
BASIC_ACK = (60, 80)
BASIC_NACK = (60, 120)
CONFIRM_SELECT = (85, 10)

#: Payload bytes kept per frame: a method's ids and basic.ack's delivery tag and
#: flags (4 + 9), or a content header's class, weight and body size (12).
PREFIX = 16
_HEAD = struct.Struct(">BHI")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame as read: its header, the first :data:`PREFIX` bytes of its payload."""

    type: int
    channel: int
    size: int
    prefix: bytes
    #: Offset, in the chunk that completed the frame, just past its frame-end byte.
    end: int

    @property
    def method(self) -> tuple[int, int] | None:
        """``(class-id, method-id)`` of a method frame, else None."""
        if self.type != FRAME_METHOD or len(self.prefix) < 4:
            return None
        return struct.unpack_from(">HH", self.prefix)  # type: ignore[return-value]

    @property
    def body_size(self) -> int | None:
        """The body size a content header announces, else None."""
        if self.type != FRAME_HEADER or len(self.prefix) < 12:
            return None
        return struct.unpack_from(">Q", self.prefix, 4)[0]

    def delivery_tag(self) -> tuple[int, bool] | None:
        """``(delivery-tag, multiple)`` of a ``basic.ack`` or ``basic.nack``, else None."""
        if self.method not in (BASIC_ACK, BASIC_NACK) or len(self.prefix) < 13:
            return None
        tag, bits = struct.unpack_from(">QB", self.prefix, 4)
        return tag, bool(bits & 1)


class FrameReader:
    """Splits one direction of an AMQP 0-9-1 connection into :class:`Frame` objects.

    :meth:`feed` takes the bytes as they come off the socket, in any pieces,
    and returns the frames those bytes completed.  A leading protocol header
    (``AMQP`` + version) is skipped.  After a framing error it returns
    nothing more and :attr:`error` says why.
    """

    def __init__(self, max_frame: int = 1 << 28) -> None:
        self.max_frame = max_frame
        self.error: str | None = None
        self.frames = 0
        self._started = False
        self._skip = 0
        self._head = bytearray()
        self._type = self._channel = self._size = 0
        self._left = -1  # payload bytes still to come; -1 while reading a header
        self._prefix = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        i, n = 0, len(data)
        while i < n and self.error is None:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
            elif not self._started:
                self._started = True
                if data[i:i + 1] == PROTOCOL_HEADER[:1]:
                    self._skip = len(PROTOCOL_HEADER)
            elif self._left < 0:
                take = min(_HEAD.size - len(self._head), n - i)
                self._head += data[i:i + take]
                i += take
                if len(self._head) == _HEAD.size:
                    self._type, self._channel, self._size = _HEAD.unpack(self._head)
                    self._head.clear()
                    if self._type not in FRAME_TYPES or self._size > self.max_frame:
                        self.error = (f"frame {self.frames + 1}: type {self._type}, "
                                      f"size {self._size} is not AMQP 0-9-1")
                        break
                    self._left = self._size
                    self._prefix = bytearray()
            elif self._left > 0:
                take = min(self._left, n - i)
                keep = min(take, PREFIX - len(self._prefix))
                if keep > 0:
                    self._prefix += data[i:i + keep]
                self._left -= take
                i += take
            else:  # the payload is complete; the frame-end byte is next
                if data[i] != FRAME_END:
                    self.error = (f"frame {self.frames + 1}: frame end 0x{data[i]:02x}, "
                                  f"expected 0x{FRAME_END:02x}")
                    break
                i += 1
                self.frames += 1
                self._left = -1
                out.append(Frame(self._type, self._channel, self._size, bytes(self._prefix), i))
        return out


@dataclasses.dataclass(frozen=True)
class Publish:
    """One complete ``basic.publish`` the client sent."""

    channel: int
    #: The delivery tag the broker confirms it with; None outside confirm mode.
    seq: int | None
    #: Offset, in the chunk that completed it, just past its last frame.
    end: int


class AmqpSession:
    """Both directions of one connection: which publishes were sent, which answer is awaited.

    Per channel it follows ``confirm.select`` (after which the broker numbers
    the channel's publishes 1, 2, ... as delivery tags) and the content of a
    publish in progress (method, then header, then body frames up to the
    announced size).  ``channel.open``/``close`` start a channel afresh.
    """

    def __init__(self) -> None:
        self.client = FrameReader()
        self.broker = FrameReader()
        self._confirmed: dict[int, int] = {}  # channel -> publishes since confirm.select
        self._content: dict[int, int] = {}  # channel -> body bytes to come; -1: no header yet
        self._awaited: Publish | None = None

    @property
    def error(self) -> str | None:
        return self.client.error or self.broker.error

    def from_client(self, data: bytes) -> list[Publish]:
        """The publishes ``data`` completed, in order."""
        published = []
        for frame in self.client.feed(data):
            channel = frame.channel
            if frame.type == FRAME_METHOD:
                method = frame.method
                # Any method frame ends a publish's content on its channel.
                self._content.pop(channel, None)
                if method == BASIC_PUBLISH:
                    self._content[channel] = -1
                elif method == CONFIRM_SELECT:
                    self._confirmed.setdefault(channel, 0)
                elif method in (CHANNEL_OPEN, CHANNEL_CLOSE, CHANNEL_CLOSE_OK):
                    self._confirmed.pop(channel, None)
            elif frame.type == FRAME_HEADER and self._content.get(channel) == -1:
                self._content[channel] = frame.body_size or 0
                if self._content[channel] == 0:
                    published.append(self._complete(channel, frame.end))
            elif frame.type == FRAME_BODY and self._content.get(channel, 0) > 0:
                self._content[channel] -= frame.size
                if self._content[channel] <= 0:
                    published.append(self._complete(channel, frame.end))
        return published

    def _complete(self, channel: int, end: int) -> Publish:
        del self._content[channel]
        seq = None
        if channel in self._confirmed:
            seq = self._confirmed[channel] = self._confirmed[channel] + 1
        return Publish(channel, seq, end)

    def await_answer(self, publish: Publish) -> None:
        """From now on, :meth:`from_broker` looks for the broker's answer to ``publish``."""
        self._awaited = publish

    def from_broker(self, data: bytes) -> bool:
        """Whether ``data`` completed the answer to the awaited publish."""
        frames = self.broker.feed(data)
        return self._awaited is not None and any(self._answers(f) for f in frames)

    def _answers(self, frame: Frame) -> bool:
        awaited = self._awaited
        assert awaited is not None
        if awaited.seq is None:
            return True  # outside confirm mode, whatever comes next
        method = frame.method
        if method == CONNECTION_CLOSE:
            return True
        if method is None or frame.channel != awaited.channel:
            return False
        if method == CHANNEL_CLOSE:
            return True
        tag = frame.delivery_tag()
        if tag is None:
            return False
        number, multiple = tag
        return number == awaited.seq or (multiple and (number == 0 or number >= awaited.seq))


class ConfirmBudget:
    """How many more publishes lose their confirmation; shared by the proxies of a backend.

    One budget for all the proxies of a multi-host URL makes "the next N
    publishes" mean N across the cluster, whichever host each goes to.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0

    def set(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        with self._lock:
            self._left = count

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True

    @property
    def left(self) -> int:
        with self._lock:
            return self._left


class ConfirmLoser:
    """One connection's publish counting and lost-confirmation bookkeeping (loop thread only).

    The proxy's loop calls :meth:`client_data` with what it read from the
    client, :meth:`client_sent` with what it wrote to the broker, and
    :meth:`broker_data` with what it read from the broker; the answers tell
    it what to pass on and when to cut.
    """

    def __init__(self, budget: ConfirmBudget) -> None:
        self.session = AmqpSession()
        self.budget = budget
        self.publishes = 0
        #: Of those, the ones on a channel in confirm mode.
        self.confirmed = 0
        #: The publish whose confirmation is being lost, once the budget granted it.
        self.doomed: Publish | None = None
        self._doomed_at = 0  # its end, as an offset in the client->broker stream
        self._read = 0
        self._sent = 0
        #: Whether the doomed publish has been written whole: the broker may answer now.
        self.holding = False

    def client_data(self, data: bytes) -> tuple[bytes, int]:
        """What of ``data`` to pass to the broker, and how many publishes it completed.

        Publishes after a doomed one in the same chunk are neither passed on
        nor counted: the broker never sees them.
        """
        if self.doomed is not None:
            return b"", 0  # nothing after the doomed publish reaches the broker
        count = 0
        for publish in self.session.from_client(data):
            count += 1
            self.confirmed += publish.seq is not None
            if self.budget.take():
                self.doomed = publish
                data = data[:publish.end]
                self._doomed_at = self._read + publish.end
                break
        self._read += len(data)
        self.publishes += count
        return data, count

    def client_sent(self, count: int) -> bool:
        """Record ``count`` bytes written to the broker; True when holding starts now."""
        self._sent += count
        if self.doomed is None or self.holding or self._sent < self._doomed_at:
            return False
        self.holding = True
        self.session.await_answer(self.doomed)
        return True

    def broker_data(self, data: bytes) -> tuple[bytes, bool]:
        """What of ``data`` to pass to the client, and whether to cut the connection now."""
        answered = self.session.from_broker(data)
        if not self.holding:
            return data, False
        return b"", answered
