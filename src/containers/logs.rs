//! Container logs, in the format the container was created with (`--log-driver`): docker's
//! `json-file` (one JSON object a line with the text, the stream and the time) or the CRI
//! `k8s-file` podman writes (`TIME STREAM F|P TEXT`, `P` for a partial line), both with
//! RFC 3339 times in nanoseconds; or `none`. `--log-opt max-size`/`max-file` rotate the file
//! as docker does.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown log driver {0:?}: use json-file, k8s-file or none")]
    UnknownDriver(String),
    #[error("invalid --log-opt {0:?}: use KEY=VALUE")]
    BadOpt(String),
    #[error("unknown log opt {key:?} for the {driver} log driver: burrow supports {supported}")]
    UnknownOpt {
        key: String,
        driver: &'static str,
        supported: &'static str,
    },
    #[error("invalid --log-opt max-size={0:?}: use a size such as 512k, 10m or 1g")]
    BadSize(String),
    #[error("invalid --log-opt max-file={0:?}: use a number of at least 1")]
    BadMaxFile(String),
    #[error("--log-opt max-file needs --log-opt max-size")]
    MaxFileWithoutSize,
    #[error("invalid --log-opt path={0:?}: use an absolute path")]
    RelativePath(String),
    /// docker's message for `logs` of a container without a log file.
    #[error("configured logging driver does not support reading")]
    NotReadable,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `--log-driver`, with podman's names (docker's default, `json-file`, by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogDriver {
    #[default]
    #[serde(rename = "json-file")]
    JsonFile,
    #[serde(rename = "k8s-file")]
    K8sFile,
    #[serde(rename = "none")]
    None,
}

impl LogDriver {
    pub fn parse(s: &str) -> Result<LogDriver, LogError> {
        match s {
            "json-file" => Ok(LogDriver::JsonFile),
            "k8s-file" => Ok(LogDriver::K8sFile),
            "none" => Ok(LogDriver::None),
            other => Err(LogError::UnknownDriver(other.to_string())),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::K8sFile => "k8s-file",
            LogDriver::None => "none",
        }
    }
}

/// A container's `--log-driver` and `--log-opt`s, validated at create time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// The options as given, for `inspect`'s `HostConfig.LogConfig.Config`.
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

/// The options the file drivers understand.
const FILE_OPTS: &str = "path, max-size and max-file";

impl LogConfig {
    pub fn parse(driver: Option<&str>, opts: &[String]) -> Result<LogConfig, LogError> {
        let driver = driver.map_or(Ok(LogDriver::default()), LogDriver::parse)?;
        let mut map = BTreeMap::new();
        for opt in opts {
            let (key, value) = opt
                .split_once('=')
                .ok_or_else(|| LogError::BadOpt(opt.clone()))?;
            let supported = match driver {
                LogDriver::None => "no options",
                _ => FILE_OPTS,
            };
            match (driver, key) {
                (LogDriver::JsonFile | LogDriver::K8sFile, "path") => {
                    if !value.starts_with('/') {
                        return Err(LogError::RelativePath(value.to_string()));
                    }
                }
                (LogDriver::JsonFile | LogDriver::K8sFile, "max-size") => {
                    parse_size(value)?;
                }
                (LogDriver::JsonFile | LogDriver::K8sFile, "max-file") => {
                    match value.parse::<u32>() {
                        Ok(n) if n >= 1 => {}
                        _ => return Err(LogError::BadMaxFile(value.to_string())),
                    }
                }
                _ => {
                    return Err(LogError::UnknownOpt {
                        key: key.to_string(),
                        driver: driver.name(),
                        supported,
                    });
                }
            }
            map.insert(key.to_string(), value.to_string());
        }
        let config = LogConfig { driver, opts: map };
        if config.opts.contains_key("max-file") && config.max_size().is_none() {
            return Err(LogError::MaxFileWithoutSize);
        }
        Ok(config)
    }

    /// The log file of a container whose directory is `container_dir`; `None` without one.
    pub fn path(&self, container_dir: &Path) -> Option<PathBuf> {
        match self.driver {
            LogDriver::None => None,
            _ => Some(
                self.opts
                    .get("path")
                    .map_or_else(|| container_dir.join("ctr.log"), PathBuf::from),
            ),
        }
    }

    /// The size at which the file is rotated; `None` (or docker's `-1`) for no limit.
    pub fn max_size(&self) -> Option<u64> {
        self.opts
            .get("max-size")
            .and_then(|s| parse_size(s).ok().flatten())
    }

    /// How many files rotation keeps, the current one included.
    pub fn max_file(&self) -> u32 {
        self.opts
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1)
    }

    /// The file format, `None` for the `none` driver.
    pub fn format(&self) -> Option<Format> {
        match self.driver {
            LogDriver::JsonFile => Some(Format::JsonFile),
            LogDriver::K8sFile => Some(Format::K8sFile),
            LogDriver::None => None,
        }
    }
}

/// docker's sizes (`RAMInBytes`): a number, then an optional binary unit `k`, `m`, `g`, `t`
/// (with an optional `b` or `ib`); `-1` is no limit.
fn parse_size(s: &str) -> Result<Option<u64>, LogError> {
    if s == "-1" {
        return Ok(None);
    }
    let bad = || LogError::BadSize(s.to_string());
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = (num * scale as f64) as u64;
    if bytes == 0 {
        return Err(bad());
    }
    Ok(Some(bytes))
}

/// How entries are laid out in a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    JsonFile,
    K8sFile,
}

/// One entry: a line (with its newline) or part of one (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

impl LogEntry {
    /// It ends a line (a partial entry is continued by the next one of its stream).
    pub fn ends_line(&self) -> bool {
        self.log.ends_with('\n')
    }
}

#[derive(Serialize, Deserialize)]
struct JsonEntry {
    log: String,
    stream: String,
    time: String,
}

pub fn now_rfc3339_nanos() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    now.format(&fmt).unwrap_or_default()
}

/// docker splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

fn stream_name(stream: usize) -> &'static str {
    if stream == 0 { "stdout" } else { "stderr" }
}

/// One entry as a line of the file.
fn encode(format: Format, stream: usize, text: &[u8], time: &str) -> Vec<u8> {
    match format {
        Format::JsonFile => {
            let entry = JsonEntry {
                log: String::from_utf8_lossy(text).into_owned(),
                stream: stream_name(stream).into(),
                time: time.to_string(),
            };
            let mut line = serde_json::to_vec(&entry).unwrap_or_default();
            line.push(b'\n');
            line
        }
        Format::K8sFile => {
            let (body, tag) = match text.strip_suffix(b"\n") {
                Some(body) => (body, "F"),
                None => (text, "P"),
            };
            let mut line = format!("{time} {} {tag} ", stream_name(stream)).into_bytes();
            line.extend_from_slice(body);
            line.push(b'\n');
            line
        }
    }
}

/// One line of a file as an entry; `None` for a line that is not one.
fn decode(format: Format, line: &[u8]) -> Option<LogEntry> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    match format {
        Format::JsonFile => {
            let e: JsonEntry = serde_json::from_slice(line).ok()?;
            Some(LogEntry {
                log: e.log,
                stream: e.stream,
                time: e.time,
            })
        }
        Format::K8sFile => {
            let mut fields = line.splitn(4, |&b| b == b' ');
            let time = std::str::from_utf8(fields.next()?).ok()?.to_string();
            let stream = std::str::from_utf8(fields.next()?).ok()?.to_string();
            let tag = fields.next()?;
            let mut log = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
            match tag {
                b"F" => log.push('\n'),
                b"P" => {}
                _ => return None,
            }
            Some(LogEntry { log, stream, time })
        }
    }
}

/// The `n`th rotated file of `path` (`ctr.log.1` is the newest).
fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Appends complete lines per stream; a partial line waits for its newline, for
/// [`MAX_LINE`] bytes, or for [`LogWriter::flush`] at the end.
pub struct LogWriter {
    format: Format,
    path: PathBuf,
    file: fs::File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// The writer for a container's log; `None` for the `none` driver.
    pub fn open(config: &LogConfig, container_dir: &Path) -> Result<Option<LogWriter>, LogError> {
        let (Some(format), Some(path)) = (config.format(), config.path(container_dir)) else {
            return Ok(None);
        };
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        Ok(Some(LogWriter {
            format,
            path,
            file,
            size,
            max_size: config.max_size(),
            max_file: config.max_file(),
            pending: [Vec::new(), Vec::new()],
        }))
    }

    fn emit(&mut self, stream: usize, text: &[u8]) {
        let line = encode(self.format, stream, text, &now_rfc3339_nanos());
        if let Some(max) = self.max_size
            && self.size > 0
            && self.size + line.len() as u64 > max
            && let Err(e) = self.rotate()
        {
            log::warn!("cannot rotate {}: {e}", self.path.display());
        }
        if self.file.write_all(&line).is_ok() {
            self.size += line.len() as u64;
        }
    }

    /// docker's rotation: shift `log.N-1` to `log.N` … `log` to `log.1`, and start a new
    /// file (with a single file, the old one is dropped). The new file replaces the old one
    /// rather than emptying it in place, so a reader following it sees a new file (a
    /// truncated one can look unchanged).
    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_file >= 2 {
            for n in (1..self.max_file - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".new");
        let file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        fs::rename(&tmp, &self.path)?;
        self.file = file;
        self.size = 0;
        Ok(())
    }

    /// `stream`: 0 for stdout, 1 for stderr.
    pub fn write(&mut self, stream: usize, mut data: &[u8]) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[stream]);
            line.extend_from_slice(&data[..=pos]);
            for chunk in line.chunks(MAX_LINE) {
                self.emit(stream, chunk);
            }
            data = &data[pos + 1..];
        }
        self.pending[stream].extend_from_slice(data);
        while self.pending[stream].len() >= MAX_LINE {
            let rest = self.pending[stream].split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.pending[stream], rest);
            self.emit(stream, &chunk);
        }
    }

    /// Write out the partial lines (the container's output ended).
    pub fn flush(&mut self) {
        for stream in 0..2 {
            if !self.pending[stream].is_empty() {
                let line = std::mem::take(&mut self.pending[stream]);
                self.emit(stream, &line);
            }
        }
    }
}

/// Reads a container's log: everything so far, then what is appended, across rotations.
pub struct LogReader {
    format: Format,
    path: PathBuf,
    max_file: u32,
    /// The file being read and the offset after its last complete line.
    current: Option<(fs::File, u64)>,
}

impl LogReader {
    pub fn new(config: &LogConfig, container_dir: &Path) -> Result<LogReader, LogError> {
        let (Some(format), Some(path)) = (config.format(), config.path(container_dir)) else {
            return Err(LogError::NotReadable);
        };
        Ok(LogReader {
            format,
            path,
            max_file: config.max_file(),
            current: None,
        })
    }

    /// Every entry so far, the rotated files' first (oldest first).
    pub fn read_all(&mut self) -> Result<Vec<LogEntry>, LogError> {
        let mut entries = Vec::new();
        for n in (1..self.max_file).rev() {
            let path = rotated(&self.path, n);
            if let Ok(mut file) = fs::File::open(&path) {
                read_lines(self.format, &mut file, 0, &mut entries).map_err(io_err(&path))?;
            }
        }
        self.current = None;
        entries.extend(self.read_new()?);
        Ok(entries)
    }

    /// The entries appended since the last read. A rotation (the path names a new file) ends
    /// the old file first; a truncation starts over at the beginning.
    pub fn read_new(&mut self) -> Result<Vec<LogEntry>, LogError> {
        let mut entries = Vec::new();
        loop {
            if self.current.is_none() {
                match fs::File::open(&self.path) {
                    Ok(f) => self.current = Some((f, 0)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(entries),
                    Err(e) => return Err(io_err(&self.path)(e)),
                }
            }
            let Some((file, offset)) = self.current.as_mut() else {
                return Ok(entries);
            };
            let meta = file.metadata().map_err(io_err(&self.path))?;
            // Looked at before reading: a file already replaced gets no more entries, so
            // reading it to its end loses none.
            let replaced = fs::metadata(&self.path)
                .is_ok_and(|m| (m.dev(), m.ino()) != (meta.dev(), meta.ino()));
            if meta.len() < *offset {
                *offset = 0;
            }
            *offset =
                read_lines(self.format, file, *offset, &mut entries).map_err(io_err(&self.path))?;
            if !replaced {
                return Ok(entries);
            }
            self.current = None;
        }
    }
}

/// Append the entries of `file`'s complete lines from `offset`; returns the offset after the
/// last complete line.
fn read_lines(
    format: Format,
    file: &mut fs::File,
    offset: u64,
    entries: &mut Vec<LogEntry>,
) -> std::io::Result<u64> {
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut reader = std::io::BufReader::new(file);
    let mut pos = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(pos);
        }
        pos += n as u64;
        entries.extend(decode(format, &line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(driver: &str, opts: &[&str]) -> LogConfig {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        LogConfig::parse(Some(driver), &opts).unwrap()
    }

    fn texts(entries: &[LogEntry]) -> Vec<(&str, &str)> {
        entries
            .iter()
            .map(|e| (e.stream.as_str(), e.log.as_str()))
            .collect()
    }

    #[test]
    fn lines_are_split_and_partial_lines_wait() {
        for driver in ["json-file", "k8s-file"] {
            let dir = tempfile::tempdir().unwrap();
            let config = config(driver, &[]);
            let mut w = LogWriter::open(&config, dir.path()).unwrap().unwrap();
            w.write(0, b"one\ntw");
            w.write(1, b"err\n");
            w.write(0, b"o\nthree");
            w.flush();
            let mut r = LogReader::new(&config, dir.path()).unwrap();
            let entries = r.read_all().unwrap();
            assert_eq!(
                texts(&entries),
                [
                    ("stdout", "one\n"),
                    ("stderr", "err\n"),
                    ("stdout", "two\n"),
                    ("stdout", "three")
                ],
                "{driver}"
            );
            assert!(entries[0].time.ends_with('Z'));
            assert!(r.read_new().unwrap().is_empty());
            w.write(1, b"later\n");
            assert_eq!(texts(&r.read_new().unwrap()), [("stderr", "later\n")]);
        }
    }

    #[test]
    fn k8s_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let config = config("k8s-file", &[]);
        let mut w = LogWriter::open(&config, dir.path()).unwrap().unwrap();
        w.write(0, b"a b\n\n");
        w.write(1, &vec![b'x'; MAX_LINE + 3]);
        w.write(1, b"\n");
        let mut long = vec![b'y'; 2 * MAX_LINE + 1];
        long.push(b'\n');
        w.write(1, &long);
        w.write(0, b"end");
        w.flush();
        let text = fs::read_to_string(dir.path().join("ctr.log")).unwrap();
        let fields: Vec<(&str, &str, String)> = text
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let time = f.next().unwrap();
                assert!(time.len() == 30 && time.ends_with('Z'), "{time}");
                let stream = f.next().unwrap();
                let tag = f.next().unwrap();
                (stream, tag, f.next().unwrap().to_string())
            })
            .collect();
        let x = |n| "x".repeat(n);
        assert_eq!(
            fields,
            [
                ("stdout", "F", "a b".to_string()),
                ("stdout", "F", String::new()),
                ("stderr", "P", x(MAX_LINE)),
                ("stderr", "F", x(3)),
                ("stderr", "P", "y".repeat(MAX_LINE)),
                ("stderr", "P", "y".repeat(MAX_LINE)),
                ("stderr", "F", "y".to_string()),
                ("stdout", "P", "end".to_string()),
            ]
        );
    }

    #[test]
    fn rotation_keeps_max_file_files_and_reader_follows() {
        let dir = tempfile::tempdir().unwrap();
        let config = config("k8s-file", &["max-size=100", "max-file=3"]);
        let mut w = LogWriter::open(&config, dir.path()).unwrap().unwrap();
        let mut r = LogReader::new(&config, dir.path()).unwrap();
        assert!(r.read_all().unwrap().is_empty());
        let mut followed = Vec::new();
        for i in 0..10 {
            // Each entry is about 50 bytes: two a file.
            w.write(0, format!("line{i}\n").as_bytes());
            followed.extend(r.read_new().unwrap());
        }
        let want: Vec<String> = (0..10).map(|i| format!("line{i}\n")).collect();
        let got: Vec<String> = followed.iter().map(|e| e.log.clone()).collect();
        assert_eq!(got, want);
        assert!(dir.path().join("ctr.log.2").exists());
        assert!(!dir.path().join("ctr.log.3").exists());
        let all = LogReader::new(&config, dir.path())
            .unwrap()
            .read_all()
            .unwrap();
        let got: Vec<String> = all.iter().map(|e| e.log.clone()).collect();
        assert_eq!(got, want[4..]);
    }

    #[test]
    fn single_file_rotation_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let config = config("json-file", &["max-size=150"]);
        let mut w = LogWriter::open(&config, dir.path()).unwrap().unwrap();
        let mut r = LogReader::new(&config, dir.path()).unwrap();
        let mut followed = Vec::new();
        for i in 0..6 {
            w.write(0, format!("line{i}\n").as_bytes());
            followed.extend(r.read_new().unwrap());
        }
        assert_eq!(followed.len(), 6);
        assert!(fs::metadata(dir.path().join("ctr.log")).unwrap().len() <= 150);
        assert!(!dir.path().join("ctr.log.1").exists());
    }

    #[test]
    fn options() {
        let c = config(
            "k8s-file",
            &["path=/tmp/x.log", "max-size=10m", "max-file=2"],
        );
        assert_eq!(c.path(Path::new("/c")), Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(c.max_size(), Some(10 << 20));
        assert_eq!(c.max_file(), 2);
        assert_eq!(
            config("json-file", &[]).path(Path::new("/c")).unwrap(),
            Path::new("/c/ctr.log")
        );
        assert_eq!(config("none", &[]).path(Path::new("/c")), None);
        assert_eq!(parse_size("512k").unwrap(), Some(512 << 10));
        assert_eq!(parse_size("1.5MiB").unwrap(), Some(3 << 19));
        assert_eq!(parse_size("100").unwrap(), Some(100));
        assert_eq!(parse_size("-1").unwrap(), None);
        for bad in [
            (Some("syslog"), &["x=y"][..]),
            (Some("json-file"), &["compress=true"][..]),
            (Some("json-file"), &["max-size"][..]),
            (Some("json-file"), &["max-size=lots"][..]),
            (Some("json-file"), &["max-file=3"][..]),
            (Some("k8s-file"), &["path=rel.log"][..]),
            (Some("none"), &["max-size=1m"][..]),
        ] {
            let opts: Vec<String> = bad.1.iter().map(|s| s.to_string()).collect();
            assert!(LogConfig::parse(bad.0, &opts).is_err(), "{bad:?}");
        }
        // Records written before log drivers existed.
        let old: LogConfig = serde_json::from_str(r#"{"driver":"json-file"}"#).unwrap();
        assert_eq!(old, LogConfig::default());
    }
}
