import { constants, createWriteStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import yazl from 'yazl';

/** Where an execution's ZIP lives; the gateway serves the same path. */
export function artifactPath(dir: string, executionId: string): string {
  return join(dir, `${executionId}.zip`);
}

/**
 * Writes `<dir>/<id>.zip` from what `fill` adds (it resolves to the number of files), to a temporary name
 * renamed at the end, so a reader sees the whole ZIP or none.
 */
async function writeZip(dir: string, executionId: string, fill: (zip: yazl.ZipFile) => Promise<number>): Promise<{ path: string; files: number }> {
  await mkdir(dir, { recursive: true });
  const path = artifactPath(dir, executionId);
  const tmp = `${path}.${process.pid}.tmp`;
  const zip = new yazl.ZipFile();
  const out = createWriteStream(tmp);
  const written = pipeline(zip.outputStream, out);
  try {
    const files = await fill(zip);
    zip.end();
    await written;
    await rename(tmp, path);
    return { path, files };
  } catch (err) {
    out.destroy();
    // The zip's pipeline fails too once its file is destroyed; that failure is this one.
    await written.catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Turns Docker's tar of /workspace into `<dir>/<id>.zip`, streaming, paths relative to the workspace. */
export function saveArtifacts(tarStream: Readable, dir: string, executionId: string): Promise<{ path: string; files: number }> {
  return writeZip(dir, executionId, async (zip) => {
    const tar = extract();
    let files = 0;
    tar.on('entry', (header, stream, next) => {
      const name = header.name.replace(/^\.?\/?workspace\/?/, '');
      const mtime = header.mtime ?? new Date();
      const mode = header.mode ?? 0o644;
      if (header.type === 'directory' && name !== '') {
        zip.addEmptyDirectory(name.replace(/\/$/, ''), { mtime, mode });
      } else if (header.type === 'file' && name !== '') {
        const body = new PassThrough();
        zip.addReadStream(body, name, { mtime, mode, size: header.size });
        stream.pipe(body);
        files++;
        finished(body).then(() => next(), next);
        return;
      }
      stream.on('end', () => next());
      stream.resume();
    });
    await pipeline(tarStream, tar);
    return files;
  });
}

/**
 * Zips a workspace folder on this host into `<dir>/<id>.zip`, like saveArtifacts. The folder was written
 * by the job, so nothing in it is trusted: entries are read with lstat and opened with O_NOFOLLOW, and
 * symbolic links (which could point anywhere on the host) are left out, as in the tar path.
 */
export function saveDirectoryArtifacts(workspace: string, dir: string, executionId: string): Promise<{ path: string; files: number }> {
  return writeZip(dir, executionId, async (zip) => {
    let files = 0;
    const walk = async (relative: string): Promise<void> => {
      const entries = await readdir(join(workspace, relative), { withFileTypes: true });
      entries.sort((a, b) => a.name.localeCompare(b.name));
      for (const entry of entries) {
        const name = relative === '' ? entry.name : `${relative}/${entry.name}`;
        const full = join(workspace, name);
        const info = await lstat(full);
        if (info.isDirectory()) {
          zip.addEmptyDirectory(name, { mtime: info.mtime, mode: info.mode & 0o7777 });
          await walk(name);
        } else if (info.isFile()) {
          const handle = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW);
          const stream = handle.createReadStream();
          zip.addReadStream(stream, name, { mtime: info.mtime, mode: info.mode & 0o7777, size: info.size });
          await finished(stream);
          files++;
        }
      }
    };
    await walk('');
    return files;
  });
}
