import { otherValue } from '../../other/src/index.js'; // expect-lint: import-x/no-relative-packages

export const value = otherValue;
