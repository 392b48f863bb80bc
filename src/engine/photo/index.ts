// The photo front half of "edit your own photo": decode with limits, find the face, align it the
// FFHQ way for the encoder, and paste the edited face back. Plain functions and one class (no
// main-thread globals), so the engine's worker thread can run all of it.
//
//   const photo = await decodePhoto(bytes, { maxPixels });         // EngineError not_an_image | too_many_pixels
//   const detector = new FaceDetector({ device });                 // BlazeFace, shipped with the engine
//   const face = await findFace(detector, photo);                  // largest face; no_face | face_too_small
//   const aligned = await alignFace(photo, face, { size: 256 });   // { rgb, width, height, transform }
//   const out = await pasteBack(photo, aligned.transform, editedRgb, editedSize);  // { rgb, region }
//
// Each step is one call, so benchmarks time them apart (detect_ms, align_ms, paste_ms).
import { EngineError } from '../types.ts';
import { checkFaceSize, MIN_EYE_DISTANCE } from './align.ts';
import type { Face, FaceDetector } from './blazeface.ts';
import type { Photo } from './decode.ts';

export { decodePhoto, photoFromRgb, DEFAULT_MAX_PIXELS, type Photo, type DecodeOptions } from './decode.ts';
export {
  FaceDetector,
  BLAZEFACE_FILES,
  CANDIDATE_SCORE,
  MIN_SCORE,
  type Face,
  type Keypoints,
  type Point,
  type DetectorOptions,
  type BlazeFaceModel,
} from './blazeface.ts';
export {
  alignFace,
  ffhqTransform,
  checkFaceSize,
  eyeDistance,
  MIN_EYE_DISTANCE,
  MOUTH_CENTRE_TO_CORNERS,
  type AlignTransform,
  type AlignedFace,
  type AlignOptions,
} from './align.ts';
export { pasteBack, maskWeight, type PasteOptions, type PastedPhoto } from './paste.ts';
export { applyAffine, invertAffine, type Affine, type RgbImage } from './warp.ts';

/** The largest face in the photo. Throws `no_face`, or `face_too_small` (eyes closer than `minEyeDistance`). */
export async function findFace(detector: FaceDetector, photo: Photo, opts: { minEyeDistance?: number } = {}): Promise<Face> {
  const faces = await detector.detect(photo);
  if (faces.length === 0) {
    throw new EngineError('no_face', 'no face found in the photo: it needs an upright, roughly frontal face at least ~5 % of the photo\'s longer side');
  }
  checkFaceSize(faces[0], opts.minEyeDistance ?? MIN_EYE_DISTANCE);
  return faces[0];
}

export {
  PhotoPipeline,
  createPhotoPipeline,
  describeFace,
  describeFaceCount,
  summarizeFace,
  encoderInput,
  renderedRgb,
  encodeRgb,
  sideBySide,
  BEFORE_AFTER_MAX,
  type FaceSummary,
  type PhotoInversion,
  type InvertedPhoto,
  type InvertTimings,
  type FinishedPhoto,
  type PhotoPipelineOptions,
} from './pipeline.ts';
export { alignWith } from './align.ts';
export { checkPhotoHeader, type PhotoHeader } from './decode.ts';
