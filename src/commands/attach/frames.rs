//! What a container's monitor sends an `attach` client: the container's output in frames that
//! keep stdout and stderr apart (as docker's stdcopy does), then how the connection ends.
//! A frame is a 1-byte tag, a 4-byte big-endian length and the payload. The client sends the
//! container's input as plain bytes.

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
/// The run ended; the payload is its exit code (4 bytes, big-endian).
const EXIT: u8 = 3;
/// The monitor disconnects this client: it fell too far behind the container's output.
const DROPPED: u8 = 4;

const HEADER: usize = 5;
/// Larger than any frame the monitor makes (it reads at most 64 KiB at a time).
const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// `stream`: 0 for stdout, 1 for stderr.
    Output {
        stream: usize,
        data: Vec<u8>,
    },
    Exit(i32),
    Dropped,
}

#[derive(Debug, thiserror::Error)]
#[error("the container's monitor sent a malformed frame (tag {tag}, {len} bytes)")]
pub struct FrameError {
    tag: u8,
    len: usize,
}

fn header(tag: u8, len: usize, out: &mut impl Extend<u8>) {
    out.extend([tag]);
    out.extend((len as u32).to_be_bytes());
}

/// Append an output frame to `out`.
pub fn push_output(out: &mut impl Extend<u8>, stream: usize, data: &[u8]) {
    header(if stream == 0 { STDOUT } else { STDERR }, data.len(), out);
    out.extend(data.iter().copied());
}

pub fn push_exit(out: &mut impl Extend<u8>, code: i32) {
    header(EXIT, 4, out);
    out.extend(code.to_be_bytes());
}

pub fn push_dropped(out: &mut impl Extend<u8>) {
    header(DROPPED, 0, out);
}

/// Splits the bytes read from the monitor into frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the next frame starts in `buf` (consumed bytes are dropped once a read, not once
    /// a frame: a read can hold thousands of small frames).
    pos: usize,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let rest = &self.buf[self.pos..];
        let Some(head) = rest.get(..HEADER) else {
            return Ok(None);
        };
        let tag = head[0];
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let bad = FrameError { tag, len };
        if len > MAX_PAYLOAD {
            return Err(bad);
        }
        let Some(payload) = rest.get(HEADER..HEADER + len) else {
            return Ok(None);
        };
        let frame = match (tag, payload) {
            (STDOUT, _) => Frame::Output {
                stream: 0,
                data: payload.to_vec(),
            },
            (STDERR, _) => Frame::Output {
                stream: 1,
                data: payload.to_vec(),
            },
            (EXIT, &[a, b, c, d]) => Frame::Exit(i32::from_be_bytes([a, b, c, d])),
            (DROPPED, []) => Frame::Dropped,
            _ => return Err(bad),
        };
        self.pos += HEADER + len;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_reads() {
        let mut wire = Vec::new();
        push_output(&mut wire, 0, b"out\n");
        push_output(&mut wire, 1, b"err\n");
        push_output(&mut wire, 0, b"");
        push_exit(&mut wire, 3);
        push_dropped(&mut wire);
        let mut d = Decoder::default();
        let mut got = Vec::new();
        // One byte at a time: frames never depend on how reads split the stream.
        for b in wire {
            d.push(&[b]);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(d.pos, d.buf.len());
        assert_eq!(
            got,
            [
                Frame::Output {
                    stream: 0,
                    data: b"out\n".to_vec()
                },
                Frame::Output {
                    stream: 1,
                    data: b"err\n".to_vec()
                },
                Frame::Output {
                    stream: 0,
                    data: Vec::new()
                },
                Frame::Exit(3),
                Frame::Dropped,
            ]
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert!(d.next_frame().is_err());
        let mut d = Decoder::default();
        d.push(&[1, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
