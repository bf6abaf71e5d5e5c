//! The host's copy of the enclave's transparency log: entries drained from the enclave and
//! stored as C2SP tlog-tiles, with the enclave-signed checkpoint beside them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use sealbridge_enclave::{
    Enclave,
    boundary::{Request, Response},
};
use sealbridge_log::{Checkpoint, TileReader, TileStore, verify_checkpoint_for_origin};
use sealbridge_programs::Program;

pub struct HostLog {
    store: TileStore,
    dir: PathBuf,
    temporary: bool,
}

impl HostLog {
    /// Tiles go to `DIR/log` when exporting, else to a temporary directory removed on drop.
    pub fn open(export: Option<&Path>) -> anyhow::Result<Self> {
        let (dir, temporary) = match export {
            Some(d) => (d.join("log"), false),
            None => (
                std::env::temp_dir().join(format!("sealbridge-demo-log-{}", std::process::id())),
                true,
            ),
        };
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("clearing {}", dir.display()))?;
        }
        let store =
            TileStore::open(&dir).with_context(|| format!("opening tiles in {}", dir.display()))?;
        Ok(Self {
            store,
            dir,
            temporary,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Drain the enclave's new entries into the tiles (one batched write).
    pub fn sync<P: Program>(&mut self, enclave: &mut Enclave<P>) -> anyhow::Result<()> {
        let (first_index, entries) = match enclave.handle(Request::LogEntries) {
            Response::LogEntries {
                first_index,
                entries,
            } => (first_index, entries),
            other => bail!("unexpected enclave response {other:?}"),
        };
        ensure!(
            first_index == self.store.size(),
            "enclave log entries start at {first_index} but the host has {}",
            self.store.size()
        );
        if !entries.is_empty() {
            self.store.append_batch(&entries)?;
        }
        Ok(())
    }

    /// Store the enclave's signed checkpoint and check the tiles against it.
    pub fn checkpoint<P: Program>(
        &mut self,
        enclave: &mut Enclave<P>,
        ed25519: &[u8; 32],
    ) -> anyhow::Result<(String, Checkpoint)> {
        self.sync(enclave)?;
        let note = match enclave.handle(Request::Checkpoint) {
            Response::Checkpoint { note } => note,
            other => bail!("unexpected enclave response {other:?}"),
        };
        let origin = enclave.log_origin().to_string();
        let cp = verify_checkpoint_for_origin(&note, &origin, &origin, ed25519)
            .context("the enclave's checkpoint does not verify")?;
        ensure!(
            cp.size == self.store.size() && cp.root == self.store.root()?,
            "the tiles do not match the enclave's checkpoint"
        );
        self.store.write_checkpoint(&note)?;
        TileReader::open(&self.dir)?
            .verify_against(&cp)
            .context("tiles on disk do not verify against the checkpoint")?;
        Ok((note, cp))
    }
}

impl Drop for HostLog {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
