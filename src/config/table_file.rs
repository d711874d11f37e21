//! Reading one table file (the main table or a drop-in, and the secret files the table
//! names) safely: only a regular file is read, opening never blocks (a FIFO would hold the
//! daemon's reload forever), and no more than a limit is read ([`MAX_TABLE_BYTES`] for the
//! table: an include of `/dev/zero` would fill memory).

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The most the main table and its drop-in files may hold together: 16 MiB, several times a
/// table of 10,000 jobs with every key set (under 3 MB), and little enough that loading it
/// stays within a few hundred MiB of memory.
pub(crate) const MAX_TABLE_BYTES: u64 = 16 << 20;

/// Why a table file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The file could not be opened or read (not found, no permission, not UTF-8, ...).
    Io(std::io::Error),
    /// The path names something that is not a regular file: what it is.
    NotRegular(&'static str),
    /// The file is larger than the budget that was left; `alone`: larger than
    /// [`MAX_TABLE_BYTES`] by itself.
    TooLarge { alone: bool },
}

/// The text of the regular file at `path` and its metadata (of the open file, for the
/// permission checks), reading at most `budget` bytes.
pub(crate) fn read(path: &Path, budget: u64) -> Result<(String, Metadata), ReadError> {
    // Looked at before opening, so that nothing odd is even opened (opening a device can have
    // effects of its own); checked again on the open file, which is what is read.
    let before = std::fs::metadata(path).map_err(ReadError::Io)?;
    regular(&before)?;
    // O_NONBLOCK: should the path become a FIFO between the two looks, the open returns at
    // once instead of waiting for a writer. It changes nothing for a regular file.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    regular(&meta)?;
    let too_large = |len: u64| ReadError::TooLarge {
        alone: len > MAX_TABLE_BYTES,
    };
    if meta.len() > budget {
        return Err(too_large(meta.len()));
    }
    // The size can grow while it is read: never read more than the budget and one byte.
    let mut text = String::new();
    file.take(budget.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(ReadError::Io)?;
    if text.len() as u64 > budget {
        return Err(too_large(text.len() as u64));
    }
    Ok((text, meta))
}

fn regular(meta: &Metadata) -> Result<(), ReadError> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    };
    Err(ReadError::NotRegular(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cw-table-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = dir("fifo");
        let fifo = d.join("drop-in.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        // Nobody ever opens the FIFO for writing: a blocking open would never return.
        assert!(matches!(
            read(&fifo, MAX_TABLE_BYTES),
            Err(ReadError::NotRegular("a FIFO"))
        ));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn devices_and_directories_are_refused() {
        assert!(matches!(
            read(Path::new("/dev/zero"), MAX_TABLE_BYTES),
            Err(ReadError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read(Path::new("/"), MAX_TABLE_BYTES),
            Err(ReadError::NotRegular("a directory"))
        ));
    }

    #[test]
    fn the_budget_is_a_limit_and_fitting_exactly_is_fine() {
        let d = dir("size");
        let f = d.join("jobs.toml");
        std::fs::write(&f, "# 0123456789\n").expect("write");
        assert!(matches!(
            read(&f, 12),
            Err(ReadError::TooLarge { alone: false })
        ));
        let (text, _) = read(&f, 13).expect("13 bytes fit in 13");
        assert_eq!(text, "# 0123456789\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
