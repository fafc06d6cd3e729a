// A real OAuth 2.1 / OpenID authorization server for the tests: oidc-provider (npm, pinned in
// .ci/run) on a free loopback port. Usage: node provider.mjs CONFIG.json NODE_TOOLS
// (NODE_TOOLS: the npm prefix oidc-provider is installed in, .cache/node-tools).
// CONFIG: {"jwks": {"keys": [private JWK]}, "clients": [...], "scope": "mcp:tools",
//          "opaque_clients": ["..."], "ttl": 300}
// Client credentials, or the authorization-code flow with PKCE (its login and consent pages
// are oidc-provider's development ones, any user name logs in), with a resource indicator
// (RFC 8707) get an access token for that resource: a JWT (RFC 9068) signed with the given key, or an opaque one for an
// "opaque_clients" entry (to be checked by RFC 7662 introspection). Prints one JSON line
// {"issuer": "http://127.0.0.1:PORT"} on stdout once it listens; stops on SIGTERM.
// GET /test/requests: how many requests it answered, by "METHOD /path".
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const where = join(process.argv[3], 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(where).href);
const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const opaque = new Set(config.opaque_clients || []);
  const provider = new Provider(issuer, {
    clients: config.clients,
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
    jwks: config.jwks,
    scopes: ['openid', ...config.scope.split(' ')],
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        // Any resource a client asks for (a wrong audience is a real token from this server).
        getResourceServerInfo: (_ctx, resource, client) => ({
          scope: config.scope,
          audience: resource,
          accessTokenTTL: config.ttl || 300,
          accessTokenFormat: opaque.has(client.clientId) ? 'opaque' : 'jwt',
          jwt: { sign: { alg: config.jwks.keys[0].alg || 'RS256' } },
        }),
      },
    },
  });
  // Every request counted by method and path; GET /test/requests answers the counts, so a
  // test can see how often the server under test called this one (introspection, keys).
  const counts = {};
  const callback = provider.callback();
  server.on('request', (req, res) => {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && path === '/test/requests') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(counts));
      return;
    }
    const key = `${req.method} ${path}`;
    counts[key] = (counts[key] || 0) + 1;
    callback(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
