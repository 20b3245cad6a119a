import { freePort } from '@paddock/testkit'; // expect-lint: no-restricted-imports

export const port = freePort;
