"""The reconstruction instructions: the text RecA puts beside the understanding embeddings.

One is drawn at random per training sample (`recakit.objective`); `recakit.sampling.reconstruct`
uses the first by default; the tiny Janus tokenizer (`recakit.models.janus`) is trained on them.
"""

#: How a reconstruction request opens; each is followed by one of the SUBJECTS below.
REQUESTS = (
    "Describe",
    "Analyse",
    "Catalogue",
    "List",
    "Detail",
    "Document",
    "Examine and describe",
    "Inspect and report on",
    "Give a full account of",
    "Write out",
    "Spell out",
    "Go through",
    "Take stock of",
    "Break down",
    "Itemise",
    "Survey",
    "Record",
    "Explain",
    "Set out",
    "Point out",
    "Walk me through",
    "Tell me about",
    "Provide an inventory of",
    "Summarise, leaving nothing out,",
)

#: What the request asks about: the image as a whole, its objects, their attributes and layout.
SUBJECTS = (
    "every visual detail of this image",
    "all the objects in this picture and where each one sits",
    "the colours, shapes and sizes of everything in this image",
    "the layout of this scene, from the background to the foreground",
    "each element of this image and its position relative to the others",
    "what this picture shows, part by part",
    "the visual attributes of every object you can see here",
    "the composition of this image: what is where, and how large",
    "the textures, colours and lighting in this picture",
    "the number of things in this image and what each of them looks like",
    "the scene in this image as precisely as you can",
    "everything visible in this picture, the background included",
    "the arrangement of objects in this image, left to right and top to bottom",
    "the content of this image in enough detail to redraw it",
    "the style, palette and subject matter of this picture",
    "the fine details of this image that a quick glance would miss",
)

#: Instructions shown next to the understanding embeddings, in the describe / analyse / catalogue
#: style of the published recipe; one is drawn at random per sample so the model learns that the
#: embeddings, not the wording, carry the content. Their number is kept at 48 x 2**k (here
#: 24 x 16 = 384): `random.choice` then consumes a generator exactly as over 48 items, so the
#: dropout draw after it is the one the toy's reproduction numbers were measured with.
RECONSTRUCTION_INSTRUCTIONS = tuple(f"{request} {subject}." for request in REQUESTS for subject in SUBJECTS)


#: what a RecA row whose instruction is dropped says beside the image: nothing
DROPPED_INSTRUCTION = ""
