export const otherValue = 1;
