// A real OpenID provider for the oidc plugin's tests: the npm package
// oidc-provider (installed by scripts/install-test-deps into
// target/oidc-provider), on loopback, with one registered test client,
// the development login and consent pages, and short access tokens so a
// refresh happens within the test. Test-only: its cookie key and the
// development signing keys it generates are not secrets of anything.
//
// Environment: OIDC_PORT (loopback port), OIDC_ISSUER (e.g.
// http://idp.test), OIDC_APP (the app's origin, e.g. http://app.test).
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
const issuer = process.env.OIDC_ISSUER;
const app = process.env.OIDC_APP;

// Accounts whose name starts with "big" carry enough groups to push the
// ID token, and with it the session, far over 4 KB.
const bigGroups = Array.from({ length: 250 }, (_, i) => `directory-group-${String(i).padStart(4, '0')}`);

const configuration = {
  clients: [
    {
      client_id: 'palisade',
      client_secret: 'palisade-test-secret',
      redirect_uris: [`${app}/oauth2/callback`],
      post_logout_redirect_uris: [`${app}/bye`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'palisade-post',
      client_secret: 'palisade-test-post-secret',
      redirect_uris: [`${app}/oauth2/callback`],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  ttl: {
    AccessToken: 4,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
  // Refresh tokens without the offline_access scope (the default requires it).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  claims: { openid: ['sub'], profile: ['name', 'groups'] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      name: `Test user ${id}`,
      groups: id.startsWith('big') ? bigGroups : ['staff'],
    }),
  }),
  cookies: { keys: ['palisade-test-only-cookie-key'] },
};

const provider = new Provider(issuer, configuration);
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on 127.0.0.1:${port} as ${issuer}`);
});
