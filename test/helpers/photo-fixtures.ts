// Photos for the photo pipeline's tests: the real fixtures, a PNG whose header lies about its size,
// a shrunken astronaut whose face is found but too small, and an animated GIF.
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';

export const photoFixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/photos/${name}`, import.meta.url));
export const photoPath = (name: string): string => new URL(`../fixtures/photos/${name}`, import.meta.url).pathname;

/** A PNG whose header declares width × height but whose pixel data is junk. */
export function pngHeaderOnly(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', Buffer.from('not deflate data')), chunk('IEND', Buffer.alloc(0))]);
}

/** The astronaut at 256²: her face is found, its eyes ~21 px apart (under the 32 px minimum). */
export function smallFacePhoto(): Promise<Buffer> {
  return sharp(photoFixture('astronaut.jpg')).resize(256, 256).png().toBuffer();
}

/** A two-frame animated GIF whose first frame is the astronaut. */
export async function animatedAstronaut(): Promise<Buffer> {
  const frame = await sharp(photoFixture('astronaut.jpg')).raw().toBuffer({ resolveWithObject: true });
  const { width, height } = frame.info;
  const both = Buffer.concat([frame.data, Buffer.alloc(frame.data.length, 90)]);
  return sharp(both, { raw: { width, height: height * 2, channels: 3, pageHeight: height } as never })
    .gif({ loop: 0 } as never)
    .toBuffer();
}
