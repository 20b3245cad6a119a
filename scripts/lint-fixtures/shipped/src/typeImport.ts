import { Shape } from './shape.js'; // expect-lint: @typescript-eslint/consistent-type-imports

export const square: Shape = { sides: 4 };
