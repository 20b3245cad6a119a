import { subjects } from '@paddock/bus/src/subjects.js'; // expect-lint: no-restricted-imports

export const subject = subjects;
