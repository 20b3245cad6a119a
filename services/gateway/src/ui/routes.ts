import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '@paddock/errors';
import { idParams } from '../executions/schemas.js';

/** The checkout this gateway runs from (dist/src/ui/ is five levels below it): its web/ has the pages. */
const CHECKOUT = fileURLToPath(new URL('../../../../../', import.meta.url));

const packageDir = (name: string) => dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** Each folder served under /ui/assets/{name}/: the page's own files, and the prebuilt xterm.js ones. */
function assetFolders(): Record<string, string> {
  const xterm = packageDir('@xterm/xterm');
  return {
    terminal: join(CHECKOUT, 'web/terminal'),
    ingress: join(CHECKOUT, 'web/ingress'),
    xterm: join(xterm, 'lib'),
    'xterm-css': join(xterm, 'css'),
    'addon-fit': join(packageDir('@xterm/addon-fit'), 'lib'),
  };
}

/**
 * Every asset, keyed by URL, listed once at start. A request is a lookup in this map and never becomes a
 * path, so `..`, encoded slashes or symlinks cannot reach anything else. Pages are not assets: they are
 * served only by their routes, with their headers.
 */
async function indexAssets(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const [name, dir] of Object.entries(assetFolders())) {
    for (const file of await readdir(dir)) {
      const path = join(dir, file);
      if (extname(file) !== '.html' && CONTENT_TYPES[extname(file)] && (await lstat(path)).isFile()) files.set(`${name}/${file}`, path);
    }
  }
  return files;
}

/** The page's own security headers: it holds a token in localStorage, so nothing but its own code runs. */
const PAGE_HEADERS = {
  // xterm.js writes <style> elements for its renderer, hence 'unsafe-inline' for styles (never scripts).
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/**
 * Sends a file with a validator: the files are not versioned by URL, so browsers revalidate each time
 * (`no-cache`) and get a 304 while the file is unchanged, and a gateway upgrade is seen at once.
 */
async function sendFile(req: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> {
  const info = await stat(path);
  const etag = `W/"${info.size.toString(16)}-${Math.trunc(info.mtimeMs).toString(16)}"`;
  reply
    .header('cache-control', 'no-cache')
    .header('etag', etag)
    .header('last-modified', info.mtime.toUTCString())
    .header('x-content-type-options', 'nosniff');
  const cached = req.headers['if-none-match']?.split(',').some((tag) => tag.trim() === etag);
  if (cached) return reply.code(304).send();
  return reply.type(CONTENT_TYPES[extname(path)]!).send(await readFile(path));
}

/**
 * The browser UI: static pages from web/ and the xterm.js files they load. Public, since a page holds no
 * secret (it asks for the API token and keeps it in the browser); hidden from the OpenAPI document.
 */
export const uiRoutes: FastifyPluginAsync = async (app) => {
  const assets = await indexAssets();
  const terminalPage = join(CHECKOUT, 'web/terminal/index.html');
  const ingressLoginPage = join(CHECKOUT, 'web/ingress/index.html');
  // A checkout without its pages fails at start, not at the first visit.
  await Promise.all([stat(terminalPage), stat(ingressLoginPage)]);

  app.get<{ Params: { id: string } }>(
    '/ui/terminal/:id',
    { config: { public: true }, schema: { hide: true, params: idParams } },
    async (req, reply) => sendFile(req, reply.headers(PAGE_HEADERS), terminalPage),
  );

  // Where the ingress sends a browser that has no session on one of its hosts: `?to=` is the URL it asked for.
  app.get('/ui/ingress/login', { config: { public: true }, schema: { hide: true } }, async (req, reply) => sendFile(req, reply.headers(PAGE_HEADERS), ingressLoginPage));

  app.get<{ Params: { folder: string; file: string } }>(
    '/ui/assets/:folder/:file',
    {
      config: { public: true },
      schema: {
        hide: true,
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['folder', 'file'],
          properties: { folder: { type: 'string', maxLength: 64 }, file: { type: 'string', maxLength: 128 } },
        },
      },
    },
    async (req, reply) => {
      const key = `${req.params.folder}/${req.params.file}`;
      const path = assets.get(key);
      if (!path) throw new NotFoundError('asset', key);
      return sendFile(req, reply, path);
    },
  );
};
