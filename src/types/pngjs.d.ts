// pngjs has no type declarations; src/io/image.ts states the part it uses.
declare module 'pngjs';
