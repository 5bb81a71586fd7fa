"""The site's models: the page types, a form, snippets and a site setting,
so that a backup holds what real Wagtail sites hold."""

from django.db import models
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from taggit.models import TaggedItemBase
from wagtail import blocks
from wagtail.contrib.forms.models import AbstractEmailForm, AbstractFormField
from wagtail.contrib.settings.models import BaseSiteSetting, register_setting
from wagtail.fields import RichTextField, StreamField
from wagtail.models import DraftStateMixin, Orderable, Page, RevisionMixin
from wagtail.snippets.models import register_snippet


class HomePage(Page):
    pass


class SectionPage(Page):
    intro = RichTextField(blank=True)


@register_snippet
class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)

    def __str__(self) -> str:
        return self.name


@register_snippet
class Author(DraftStateMixin, RevisionMixin, models.Model):
    name = models.CharField(max_length=120)
    bio = models.TextField(blank=True)
    photo = models.ForeignKey(
        "wagtailimages.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name


class ArticlePageTag(TaggedItemBase):
    content_object = ParentalKey(
        "home.ArticlePage", related_name="tagged_items", on_delete=models.CASCADE
    )


class ArticlePage(Page):
    date = models.DateField("published on")
    author = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)
    categories = models.ManyToManyField(Category, blank=True)
    hero = models.ForeignKey(
        "wagtailimages.Image", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attachment = models.ForeignKey(
        "wagtaildocs.Document", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = StreamField(
        [
            ("heading", blocks.CharBlock()),
            ("paragraph", blocks.RichTextBlock()),
            ("link", blocks.PageChooserBlock()),
        ],
        blank=True,
    )
    tags = ClusterTaggableManager(through=ArticlePageTag, blank=True)


class ArticleLink(Orderable):
    page = ParentalKey(ArticlePage, related_name="links", on_delete=models.CASCADE)
    title = models.CharField(max_length=120)
    url = models.URLField()


class FormField(AbstractFormField):
    page = ParentalKey("FormPage", related_name="form_fields", on_delete=models.CASCADE)


class FormPage(AbstractEmailForm):
    intro = RichTextField(blank=True)
    thank_you_text = RichTextField(blank=True)


@register_setting
class SocialSettings(BaseSiteSetting):
    mastodon = models.URLField(blank=True)
    contact_email = models.EmailField(blank=True)
