//! Container logs in docker's `json-file` format: one JSON object a line with the text, the
//! stream and an RFC 3339 time with nanoseconds.

use std::fs;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends complete lines per stream; a partial line waits for its newline (or the end).
pub struct LogWriter {
    file: fs::File,
    pending: [Vec<u8>; 2],
}

pub fn now_rfc3339_nanos() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

impl LogWriter {
    pub fn open(path: &Path) -> std::io::Result<LogWriter> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file,
            pending: [Vec::new(), Vec::new()],
        })
    }

    fn emit(&mut self, stream: usize, line: &[u8]) {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: now_rfc3339_nanos(),
        };
        if let Ok(mut text) = serde_json::to_vec(&entry) {
            text.push(b'\n');
            let _ = self.file.write_all(&text);
        }
    }

    /// `stream`: 0 for stdout, 1 for stderr.
    pub fn write(&mut self, stream: usize, mut data: &[u8]) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[stream]);
            line.extend_from_slice(&data[..=pos]);
            self.emit(stream, &line);
            data = &data[pos + 1..];
        }
        self.pending[stream].extend_from_slice(data);
        // docker splits lines longer than 16 KiB.
        if self.pending[stream].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.pending[stream]);
            self.emit(stream, &line);
        }
    }

    pub fn flush(&mut self) {
        for stream in 0..2 {
            if !self.pending[stream].is_empty() {
                let line = std::mem::take(&mut self.pending[stream]);
                self.emit(stream, &line);
            }
        }
    }
}

/// Entries of a log file from byte `offset`; returns them and the offset after the last
/// complete line.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<LogEntry>, u64)> {
    use std::io::Seek;
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut pos = offset;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        pos += n as u64;
        if let Ok(entry) = serde_json::from_str::<LogEntry>(&line) {
            entries.push(entry);
        }
    }
    Ok((entries, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(0, b"one\ntw");
        w.write(1, b"err\n");
        w.write(0, b"o\nthree");
        w.flush();
        let (entries, end) = read_from(&path, 0).unwrap();
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout", "one\n"),
                ("stderr", "err\n"),
                ("stdout", "two\n"),
                ("stdout", "three")
            ]
        );
        assert_eq!(end, std::fs::metadata(&path).unwrap().len());
        assert!(entries[0].time.ends_with('Z'));
        let (more, _) = read_from(&path, end).unwrap();
        assert!(more.is_empty());
    }
}
