// A real OpenID Connect provider (the `oidc-provider` package) for Gatehouse's sign-in tests.
//
//   node provider.js '<json>'
//
// json: { "clients": [{ "client_id", "client_secret", "redirect_uris": [...] }],
//         "id_token_ttl": seconds (default 3600) }
//
// Listens on a free loopback port and prints it as the first line of stdout; the issuer is
// http://127.0.0.1:<port>. Sign-in needs no browser: the login step is a plain form post to
// /interaction/<uid>/login whose fields make up the account (login = the subject, email,
// email_verified, given_name, family_name, groups and amr, the last two comma-separated), and
// consent is given automatically. Signing keys are generated per run.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2] || '{}');
const accounts = new Map();

function list(v) {
  return (v || '').split(',').map((s) => s.trim()).filter(Boolean);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  key.kid = crypto.randomUUID();
  key.use = 'sig';
  key.alg = 'RS256';
  const provider = new Provider(issuer, {
    clients: (options.clients || []).map((c) => ({
      ...c,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [key] },
    // Code flow ID tokens carry the scopes' claims, as the big providers' do.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      groups: ['groups'],
    },
    findAccount: async (ctx, id) => {
      const a = accounts.get(id);
      if (!a) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...a }) };
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false } },
    pkce: { required: () => true },
    ttl: { IdToken: options.id_token_ttl || 3600 },
    cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
  });

  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (!m) return callback(req, res);
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name === 'login') {
        if (req.method === 'POST' && m[2]) {
          const f = await readForm(req);
          const sub = f.get('login');
          accounts.set(sub, {
            email: f.get('email') || `${sub}@example.com`,
            email_verified: f.get('email_verified') !== 'false',
            preferred_username: sub,
            given_name: f.get('given_name') || undefined,
            family_name: f.get('family_name') || undefined,
            name: [f.get('given_name'), f.get('family_name')].filter(Boolean).join(' ') || sub,
            groups: list(f.get('groups')),
          });
          const amr = list(f.get('amr'));
          return await provider.interactionFinished(
            req,
            res,
            { login: { accountId: sub, amr: amr.length ? amr : ['pwd'] } },
            { mergeWithLastSubmission: false },
          );
        }
        res.setHeader('content-type', 'text/html; charset=utf-8');
        return res.end(
          `<form method="post" action="/interaction/${details.uid}/login">` +
            '<input name="login"><input name="email"><button>Sign in</button></form>',
        );
      }
      // Consent: granted at once for whatever the client asked.
      const { prompt: { details: missing }, params, session } = details;
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (e) {
      res.statusCode = 400;
      res.end(String(e && e.message));
    }
  });
  process.stdout.write(`${port}\n`);
});
